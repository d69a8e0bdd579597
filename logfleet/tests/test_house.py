"""The house: what lives where (README, Layout)."""

import ast
from pathlib import Path

from django.conf import settings
from django.core.management import get_commands

PRODUCT_APPS = ("logfleet", "accounts", "agents", "apikeys", "metrics", "streaming", "edge")


def product_modules():
    for app in PRODUCT_APPS:
        for path in (Path(settings.BASE_DIR) / app).rglob("*.py"):
            if "tests" not in path.parts and "migrations" not in path.parts:
                yield path


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_product_module_imports_the_benchmarks():
    offenders = [
        str(path) for path in product_modules() if any(n.split(".")[0] == "bench" for n in imported_modules(path))
    ]
    assert offenders == []


# Where DRF belongs: the API layer. Everything else (services, models, admin, commands, consumers,
# the edge's hand-written body checks) raises logfleet.errors, which each caller maps in one place.
# The dashboard's pages are views too: they validate forms with the API's own serializers.
DRF_LAYER = ("views.py", "pages.py", "serializers.py", "urls.py", "authentication.py", "query_params.py")
DRF_PACKAGES = ("logfleet/api/",)
DRF_MODULES = ("logfleet/settings.py", "logfleet/testing.py", "logfleet/views.py")


def test_only_the_api_layer_speaks_drf():
    base = Path(settings.BASE_DIR)
    offenders = []
    for path in product_modules():
        relative = path.relative_to(base).as_posix()
        if path.name in DRF_LAYER or relative in DRF_MODULES or relative.startswith(DRF_PACKAGES):
            continue
        if any(name == "rest_framework" or name.startswith("rest_framework.") for name in imported_modules(path)):
            offenders.append(relative)
    assert offenders == []


def test_every_benchmark_command_lives_in_bench():
    benchmarks = {name: app for name, app in get_commands().items() if name.startswith("bench_")}
    assert set(benchmarks) == {
        "bench_alerts",
        "bench_edge",
        "bench_fleet",
        "bench_load",
        "bench_metrics",
        "bench_pages",
        "bench_stream",
    }
    assert set(benchmarks.values()) == {"bench"}


def test_the_one_hop_handler_still_matches_the_pinned_djangos_handler():
    """logfleet.http_handler overrides three methods of Django's ASGI handler and relies on the rest:
    if Django changes them, read the new code, adapt OneHopASGIHandler, then update these digests."""
    import hashlib
    import inspect

    from django.core.handlers.asgi import ASGIHandler
    from django.core.handlers.base import BaseHandler

    digests = {
        method.__qualname__: hashlib.sha256(inspect.getsource(method).encode()).hexdigest()[:16]
        for method in (
            ASGIHandler.__call__,
            ASGIHandler.handle,
            BaseHandler.get_response_async,
            BaseHandler.load_middleware,
        )
    }
    assert digests == {
        "ASGIHandler.__call__": "f756809e9c9308dc",
        "ASGIHandler.handle": "98faeb5bef800331",
        "BaseHandler.get_response_async": "ad82c920df0cebbb",
        "BaseHandler.load_middleware": "a1fb7ee5f8586195",
    }


def test_daphne_leaves_post_bodies_to_django():
    """Twisted parses POST bodies as forms for nothing under Daphne (logfleet.http_handler): the
    keyword that turns it off is still in its Request's constructor, and the server's requests pass it."""
    import inspect

    from daphne.http_protocol import WebRequest
    from twisted.web.http import Request

    from logfleet.http_handler import daphne_without_form_parsing

    assert "parsePOSTFormSubmission" in inspect.signature(Request.__init__).parameters
    assert daphne_without_form_parsing()
    assert WebRequest.__init__.without_form_parsing


def test_every_model_is_in_the_admin():
    from django.apps import apps
    from django.contrib import admin

    ours = [model for model in apps.get_models() if model._meta.app_label in PRODUCT_APPS]
    missing = [model._meta.label for model in ours if model not in admin.site._registry]
    assert missing == []


def test_model_defaults_follow_the_services_clock(db, clock, org):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.services import audit_record

    clock.advance(400 * 86400)
    event = audit_record(organization=org, action="test.moved", target_type="organization", target_id=org.pk)
    assert event.created_at - timezone.now() < timedelta(seconds=5)  # the moved clock, not the wall clock
    assert event.created_at > org.created_at + timedelta(days=399)
