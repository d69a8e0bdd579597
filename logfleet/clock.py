"""The service's clock: Django's `timezone.now`, looked up each time it is called.

A model field's `default=timezone.now` keeps the function it was given when the class was built, so
a test that moves the clock (conftest's `clock` fixture patches `django.utils.timezone.now`) would
not move it; `default=clock.now` follows. Real-time mechanisms (rate-limit windows, per-second
budgets, socket timers) keep using the wall clock on purpose: they live in caches with real TTLs.
"""

from django.utils import timezone


def now():
    return timezone.now()


def unix() -> float:
    """Now, in Unix seconds."""
    return now().timestamp()
