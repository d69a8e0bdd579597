"""ASGI entry point: HTTP through Django; WebSocket routes join as the streaming app provides them."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "logfleet.settings")

# Build the Django application first: it sets up the app registry that routing modules import.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

application = ProtocolTypeRouter({"http": django_asgi_app})
