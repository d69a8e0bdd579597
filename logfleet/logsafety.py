"""Keep credentials out of the logs.

The viewer WebSocket carries its access token in the query string (browsers cannot set headers
on a WebSocket). Daphne logs paths without the query string; Uvicorn's access log writes it, so
this filter redacts `token=...` from every record of the loggers it is attached to.
"""

import logging
import re

TOKEN_RE = re.compile(r"((?:^|[?&])(?:token|access_token)=)[^&\s\"']+")


def redact(value):
    return TOKEN_RE.sub(r"\1[redacted]", value) if isinstance(value, str) else value


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: redact(value) for key, value in record.args.items()}
        return True
