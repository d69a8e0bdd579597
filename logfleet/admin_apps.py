from django.contrib.admin.apps import AdminConfig


class LogFleetAdminConfig(AdminConfig):
    """django.contrib.admin with LogFleet's site (logfleet.admin_site: its login is rate limited)."""

    default_site = "logfleet.admin_site.LogFleetAdminSite"
