from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "metrics"

    def ready(self):
        from metrics import configs

        # Matching metric configs are part of what every agent runs (its config_hash).
        configs.register()
