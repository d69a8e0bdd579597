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
            "name": "http_response_status",
            "type": "counter",
            "description": "HTTP response status codes",
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

NGINX_LINES = [
    '10.0.0.1 - - [15/Jan/2024:10:30:00 +0000] "GET /index.html HTTP/1.1" 200 612 "-" "curl/8" request_time=0.004',
    '10.0.0.2 - - [15/Jan/2024:10:30:01 +0000] "POST /api/login HTTP/1.1" 401 73 "-" "app/1" request_time=0.120',
    '10.0.0.3 - - [15/Jan/2024:10:30:02 +0000] "GET /slow HTTP/1.1" 200 10 "-" "curl/8" request_time=3.250',
    "not an access log line",
]


def nginx_example() -> dict:
    return copy.deepcopy(NGINX_EXAMPLE)
