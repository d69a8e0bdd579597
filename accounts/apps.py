from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"

    def ready(self):
        # Connects the receivers, also for the admin and `manage.py changepassword`.
        from accounts import signals  # noqa: F401
