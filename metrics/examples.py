"""The nginx example config: the published one (API.md section 5) with every counter named by the
Prometheus convention (`..._total`; the published example calls its second one
`http_response_status`). One copy for the demo, the agent's benchmark and the tests. Pure data, no
Django."""

import copy

NGINX_EXAMPLE = {
    "name": "nginx_metrics",
    "description": "Extract metrics from nginx access logs",
    "log_source": "nginx",
    "enabled": True,
    "metrics": [
        {
            "name": "http_requests_total",
            "type": "counter",
            "description": "Total HTTP requests",
            "pattern": '"(GET|POST|PUT|DELETE|PATCH)\\s',
            "labels": {"method": "$1"},
        },
        {
            "name": "http_responses_total",
            "type": "counter",
            "description": "HTTP responses by status code",
            "pattern": 'HTTP/\\d\\.\\d"\\s(\\d{3})',
            "labels": {"status": "$1"},
        },
        {
            "name": "request_duration_seconds",
            "type": "histogram",
            "description": "Request duration in seconds",
            "pattern": "request_time=(\\d+\\.\\d+)",
            "value_capture": "$1",
            "buckets": [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
        },
    ],
}


def nginx_example() -> dict:
    return copy.deepcopy(NGINX_EXAMPLE)
