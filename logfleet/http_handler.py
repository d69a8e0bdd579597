"""The HTTP side of logfleet.asgi: Django's ASGI handler, entered in one hop to a worker thread.

Every LogFleet HTTP view is synchronous (DRF, the ORM). Django's own ASGI handler runs the
middleware chain in async mode, so each `MiddlewareMixin` middleware is called through
`sync_to_async` twice per request (about 16 thread hops for our middleware list), and wraps each
request in a new `ThreadSensitiveContext`, which gives it a thread of its own; on these machines
that cost ten times the request itself. `OneHopASGIHandler` changes exactly three things of
`django.core.handlers.asgi.ASGIHandler`:

- `load_middleware` builds the chain in sync mode (`is_async=False`), as WSGI does;
- `__call__` does what Django's does (HTTP only, then `handle`) without the per-request
  `ThreadSensitiveContext`: nothing in LogFleet's HTTP path is thread-sensitive async code, and
  the view no longer runs in a thread chosen per request;
- `get_response_async` enters that sync chain once, on a fixed pool of HTTP_WORKER_THREADS
  threads, so that requests waiting on the database or Redis overlap; each hop first drops the
  thread's database connection if it is broken or past CONN_MAX_AGE (what the `request_started`
  signal does for a WSGI worker).

Request parsing, signals, the middleware themselves and the responses are Django's, unchanged.
`logfleet/tests/test_house.py` fails when the pinned Django's versions of these methods change.

Under Daphne, `get_http_application` also stops Twisted from parsing POST bodies as forms
(`daphne_without_form_parsing`): Daphne passes the raw body to the application and never reads
what Twisted parsed, which cost a tenth of a heartbeat's CPU (the Content-Type header through the
`email` package on every POST) and, for a multipart body, a parse of all of it into memory before
the body limit had a say.
"""

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.db import close_old_connections


class OneHopASGIHandler(ASGIHandler):
    def __init__(self):
        super().__init__()
        self.executor = ThreadPoolExecutor(max_workers=settings.HTTP_WORKER_THREADS, thread_name_prefix="http")

    def load_middleware(self, is_async=False):
        super().load_middleware(is_async=False)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}")
        await self.handle(scope, receive, send)

    async def get_response_async(self, request):
        return await sync_to_async(self._respond, thread_sensitive=False, executor=self.executor)(request)

    def _respond(self, request):
        close_old_connections()
        return self.get_response(request)


def daphne_without_form_parsing() -> bool:
    """Make Daphne's requests pass `parsePOSTFormSubmission=False` to Twisted's Request (a keyword
    of its public constructor); False when Daphne is not installed."""
    try:
        from daphne.http_protocol import WebRequest
    except ImportError:
        return False
    if getattr(WebRequest.__init__, "without_form_parsing", False):
        return True
    init = WebRequest.__init__

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("parsePOSTFormSubmission", False)
        init(self, *args, **kwargs)

    __init__.without_form_parsing = True
    WebRequest.__init__ = __init__
    return True


def get_http_application():
    """Like django.core.asgi.get_asgi_application: sets Django up, then the HTTP application (bodies
    bounded before Django reads them, logfleet.api.body_limit, around the one-hop handler)."""
    import django

    django.setup(set_prefix=False)
    from logfleet import checks
    from logfleet.api.body_limit import BodyLimitMiddleware

    checks.log_at_start()  # servers do not run the system checks
    daphne_without_form_parsing()
    return BodyLimitMiddleware(OneHopASGIHandler())
