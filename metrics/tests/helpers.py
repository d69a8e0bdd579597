from metrics import configs, services
from metrics.examples import NGINX_EXAMPLE, nginx_example  # noqa: F401 (re-exported for the tests)
from metrics.models import MetricConfig

NGINX_LINES = [
    '10.0.0.1 - - [15/Jan/2024:10:30:00 +0000] "GET /index.html HTTP/1.1" 200 612 "-" "curl/8" request_time=0.004',
    '10.0.0.2 - - [15/Jan/2024:10:30:01 +0000] "POST /api/login HTTP/1.1" 401 73 "-" "app/1" request_time=0.120',
    '10.0.0.3 - - [15/Jan/2024:10:30:02 +0000] "GET /slow HTTP/1.1" 200 10 "-" "curl/8" request_time=3.250',
    "not an access log line",
]


def config_saved_before_the_bounds(*, organization, metrics) -> MetricConfig:
    """A config holding rules that the current bounds refuse, as a row saved before the bounds existed
    (the service checks every rule it stores, so the row is written past it)."""
    config = services.metric_config_create(organization=organization, actor=None, **nginx_example())
    config.metrics = metrics
    fields = {field: getattr(config, field) for field in services.CONTENT_FIELDS}
    config.hash = configs.config_hash(**fields, version=config.version)
    config.save(update_fields=["metrics", "hash"])
    return config
