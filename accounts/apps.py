from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"

    def ready(self):
        # Connects the receivers (a new password ends the user's sessions, also from the admin
        # and manage.py changepassword, which load no URLconf).
        from accounts import services  # noqa: F401
