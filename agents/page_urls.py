from django.urls import path

from agents import pages
from agents.notifications import pages as notification_pages

urlpatterns = [
    path("agents", pages.agent_list, name="page-agents"),
    path("agents/<uuid:agent_id>", pages.agent_detail, name="page-agent"),
    path("agents/<uuid:agent_id>/labels", pages.agent_labels, name="page-agent-labels"),
    path("agents/<uuid:agent_id>/config", pages.agent_config, name="page-agent-config"),
    path("agents/<uuid:agent_id>/delete", pages.agent_delete, name="page-agent-delete"),
    path("notifications", notification_pages.notification_list, name="page-notifications"),
    path("notifications/deliveries", notification_pages.notification_deliveries, name="page-notification-deliveries"),
    path("notifications/<uuid:channel_id>", notification_pages.notification_edit, name="page-notification"),
]
