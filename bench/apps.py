from django.apps import AppConfig


class BenchConfig(AppConfig):
    """The benchmarks (`manage.py bench_*`), their load generator and the live-server harness they share
    with the live tests. Tooling, like `.ci/`: no product module imports it."""

    name = "bench"
    verbose_name = "LogFleet benchmarks"
