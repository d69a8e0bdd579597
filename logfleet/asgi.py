"""ASGI entry point: HTTP through Django's handler, WebSockets through the streaming app's consumers."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "logfleet.settings")

# Set Django up first: routing modules import models.
django_asgi_app = get_asgi_application()

from concurrent.futures import ThreadPoolExecutor  # noqa: E402

from asgiref.sync import sync_to_async  # noqa: E402
from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.db import close_old_connections  # noqa: E402

from logfleet import checks  # noqa: E402
from logfleet.api.body_limit import BodyLimitMiddleware  # noqa: E402

checks.log_at_start()


class SyncChainASGIHandler(ASGIHandler):
    """Django's ASGI handler running the middleware chain and the view in one hop to a worker thread.

    Every LogFleet HTTP view is synchronous (DRF, ORM). Django's async chain calls each
    `MiddlewareMixin` middleware through `sync_to_async` twice per request (about 16 thread
    hops for our middleware list), and starts a new thread for every request; on these
    machines that cost ten times the request itself. Here the chain is built in sync mode and
    entered once, on a fixed pool of worker threads, so that requests waiting on the database
    or Redis overlap. Django's semantics (middleware, signals, responses) are unchanged.
    """

    executor = ThreadPoolExecutor(max_workers=settings.HTTP_WORKER_THREADS, thread_name_prefix="http")

    def load_middleware(self, is_async=False):
        super().load_middleware(is_async=False)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}")
        await self.handle(scope, receive, send)

    async def get_response_async(self, request):
        return await sync_to_async(self._respond, thread_sensitive=False, executor=self.executor)(request)

    def _respond(self, request):
        # What the request_started signal does for a WSGI worker thread: drop this thread's
        # database connection if it is broken or past CONN_MAX_AGE before using it.
        close_old_connections()
        return self.get_response(request)


http_application = BodyLimitMiddleware(SyncChainASGIHandler())

from channels.routing import URLRouter  # noqa: E402

from logfleet.websocket_server import WebSocketFlow  # noqa: E402
from streaming.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {"http": http_application, "websocket": WebSocketFlow(URLRouter(websocket_urlpatterns))}
)
