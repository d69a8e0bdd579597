from django.apps import AppConfig


class ApikeysConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "apikeys"

    def ready(self):
        from apikeys import signals  # noqa: F401 (connects the receiver)
