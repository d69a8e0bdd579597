from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _sqlite_pragmas(sender, connection, **kwargs):
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")


class LogfleetConfig(AppConfig):
    name = "logfleet"
    verbose_name = "LogFleet"

    def ready(self):
        connection_created.connect(_sqlite_pragmas, dispatch_uid="logfleet-sqlite-pragmas")
        from logfleet import checks  # noqa: F401 (registers the system checks)
