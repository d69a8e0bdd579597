"""Email that must not be sent on the request's time.

A password-reset request answers the same whether or not the email is known; sending the message
inline (an SMTP round trip) would tell them apart by the time the answer takes. Such messages go
to one background thread per process instead; a failure is logged.
"""

import atexit
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait

from django.core.mail import send_mail

logger = logging.getLogger("logfleet.mail")

_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mail")
_pending: set[Future] = set()
_lock = threading.Lock()


def send_later(**message) -> None:
    """`send_mail(**message)` on the mail thread."""

    def send():
        try:
            send_mail(**message)
        except Exception:
            logger.exception("could not send the email %r", message.get("subject"))

    future = _executor.submit(send)
    with _lock:
        _pending.add(future)
    future.add_done_callback(_forget)


def _forget(future: Future) -> None:
    with _lock:
        _pending.discard(future)


def drain(timeout: float = 30) -> None:
    """Wait until every message handed over so far has been sent (tests; process exit)."""
    with _lock:
        futures = list(_pending)
    wait(futures, timeout=timeout)


atexit.register(drain)
