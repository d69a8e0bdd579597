"""LogFleet settings: everything comes from the environment (API.md section 10).

Every variable has a default that runs a bare checkout on SQLite with an in-process
channel layer and cache. A bad value stops the process at start with the variable's name.
"""

import hashlib
import hmac
import os
import re
import secrets
import sys
import warnings
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


# --- typed environment helpers -------------------------------------------------------------


def _fail(name: str, value: str, expected: str):
    raise ImproperlyConfigured(f"Environment variable {name}={value!r} is invalid: expected {expected}.")


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    _fail(name, raw, "true or false")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        _fail(name, raw, "an integer")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        _fail(name, raw, f"an integer between {minimum} and {maximum}")
    return value


# A hundred years: any duration a deployment means, and what date arithmetic can still add to now.
MAX_SECONDS = 100 * 365 * 86400


def env_seconds(name: str, default: int) -> int:
    """A TTL or interval: any whole number of seconds from 1 (API.md section 10) up to MAX_SECONDS."""
    return env_int(name, default, minimum=1, maximum=MAX_SECONDS)


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*([smh])\s*$")


def env_rate(name: str, default: str) -> str:
    raw = env_str(name, default)
    match = _RATE_RE.match(raw)
    if not match or int(match.group(1)) < 1:
        _fail(name, raw, "a rate such as 10/s, 60/m or 1000/h")
    return f"{int(match.group(1))}/{match.group(2)}"


def env_url(name: str, default: str) -> str:
    raw = env_str(name, default)
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        _fail(name, raw, "an http:// or https:// URL")
    return raw.rstrip("/")


def parse_database_url(name: str, raw: str) -> dict:
    """`sqlite:///relative.db`, `sqlite:////abs/path.db` or `postgres://user:pass@host:port/db?opt=v`."""
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        _fail(name, raw, "sqlite:///path or postgres://user:pass@host:5432/name")
    if parts.scheme == "sqlite":
        path = unquote(parts.path)
        if path.startswith("/"):
            path = path[1:]
        if not path:
            _fail(name, raw, "sqlite:///path/to/db.sqlite3")
        if path != ":memory:" and not Path(path).is_absolute():
            path = str(BASE_DIR / path)
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path,
            # A busy timeout and immediate write transactions (plus WAL, set in logfleet.apps) let
            # several server processes share one SQLite file without "database is locked" errors.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
            "CONN_MAX_AGE": 600,
            # A file, not memory, so that server processes started by the tests can share it.
            "TEST": {"NAME": str(BASE_DIR / ".test-db.sqlite3")},
        }
    if parts.scheme in {"postgres", "postgresql", "pgsql"}:
        db_name = unquote(parts.path.lstrip("/"))
        if not db_name:
            _fail(name, raw, "postgres://user:pass@host:5432/name (the database name is missing)")
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": db_name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": unquote(parts.hostname or ""),
            "PORT": str(port or ""),
            "OPTIONS": options,
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    _fail(name, raw, "a sqlite:// or postgres:// URL")


def parse_redis_url(name: str, raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        _fail(name, raw, "a redis://host:port/db URL")
    return raw


# --- core ----------------------------------------------------------------------------------

TESTING = "pytest" in sys.modules

DEBUG = env_bool("DEBUG", False)


def _development_secret_key() -> str:
    """A random key kept in .dev-secret-key, so that the server and manage.py (which hashes API keys
    with it) agree, and tokens survive a restart of `make run`. Tests get a fresh one each run."""
    if TESTING:
        return "dev-insecure-" + secrets.token_urlsafe(48)
    path = BASE_DIR / ".dev-secret-key"
    try:
        return path.read_text().strip()
    except OSError:
        key = "dev-insecure-" + secrets.token_urlsafe(48)
        path.touch(mode=0o600)
        path.write_text(key)
        return key


ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
PORT = env_int("PORT", 8080, minimum=1, maximum=65535)
PUBLIC_URL = env_url("PUBLIC_URL", "http://localhost:8080")

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if urlsplit(PUBLIC_URL).hostname not in {"localhost", "127.0.0.1", "::1"}:
        # A deployment (its PUBLIC_URL is not this machine) never runs on a key nobody chose.
        _fail("SECRET_KEY", "", "a long random string, the same on every server process (PUBLIC_URL is not local)")
    SECRET_KEY = _development_secret_key()
    if not TESTING:
        warnings.warn(
            "SECRET_KEY is not set: using the random development key in .dev-secret-key. "
            "Set SECRET_KEY in production (the same on every server process).",
            stacklevel=1,
        )
# API-key hashes are peppered with API_KEY_PEPPER when it is set, else with SECRET_KEY: to rotate
# SECRET_KEY without invalidating every agent's key, set API_KEY_PEPPER to the old SECRET_KEY.
API_KEY_PEPPER = env_str("API_KEY_PEPPER", "") or SECRET_KEY
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0, maximum=10)
# Threads per server process that run the (synchronous) Django views.
HTTP_WORKER_THREADS = env_int("HTTP_WORKER_THREADS", 8, minimum=1, maximum=256)

INSTALLED_APPS = [
    "daphne",
    "logfleet.admin_apps.LogFleetAdminConfig",  # django.contrib.admin, its login rate limited
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "logfleet",
    "accounts",
    "apikeys",
    "agents",
    "metrics",
    "streaming",
    "edge",
    # Tooling: the benchmarks' `manage.py bench_*` commands (no product module imports it).
    "bench",
]

MIDDLEWARE = [
    "logfleet.views.ProbesMiddleware",
    "logfleet.api.middleware.QueryStringMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "logfleet.api.middleware.HTTPSOnlyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "logfleet.pages.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "logfleet.urls"
ASGI_APPLICATION = "logfleet.asgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            "builtins": ["logfleet.templatetags.logfleet_tags"],
        },
    },
]

# --- data stores ---------------------------------------------------------------------------

DATABASES = {"default": parse_database_url("DATABASE_URL", env_str("DATABASE_URL", "sqlite:///db.sqlite3"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    parse_redis_url("REDIS_URL", REDIS_URL)
    CACHES = {
        "default": {
            "BACKEND": "logfleet.redis_cache.SharedRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "logfleet",
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # A viewer that does not read loses messages past `capacity` (its own, nobody else's): the
            # agent's push and the other viewers never wait for it.
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "logfleet", "capacity": 100, "expiry": 60},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "logfleet",
            # Rate-limit counters, key records and agent identities: one entry each per agent or
            # key, so the default of 300 entries would cull them all the time.
            "OPTIONS": {"MAX_ENTRIES": 200_000},
        }
    }
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 100, "expiry": 60}}
    }

# The per-process counters of the Authentication group while the shared cache is unreachable
# (logfleet.api.ratelimit): login stays limited during a Redis outage.
CACHES["ratelimit-fallback"] = {
    "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    "LOCATION": "logfleet-ratelimit-fallback",
    "OPTIONS": {"MAX_ENTRIES": 100_000},
}

# --- authentication ------------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

JWT_ACCESS_TTL = env_seconds("JWT_ACCESS_TTL", 86400)
JWT_REFRESH_TTL = env_seconds("JWT_REFRESH_TTL", 1209600)
PASSWORD_RESET_TTL = env_seconds("PASSWORD_RESET_TTL", 3600)
INVITE_TTL = env_seconds("INVITE_TTL", 604800)

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=JWT_ACCESS_TTL),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=JWT_REFRESH_TTL),
    "ALGORITHM": "HS256",
    # A key of its own, derived from SECRET_KEY: tokens are not signed with the key that also
    # signs Django's cookies and (by default) peppers API-key hashes.
    "SIGNING_KEY": hmac.new(SECRET_KEY.encode(), b"logfleet jwt signing key", hashlib.sha256).hexdigest(),
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "UPDATE_LAST_LOGIN": False,
}

# --- API -----------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.SessionJWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["logfleet.api.permissions.IsOrganizationUser"],
    "DEFAULT_RENDERER_CLASSES": ["logfleet.api.parsers.OrjsonRenderer"],
    "DEFAULT_PARSER_CLASSES": ["logfleet.api.parsers.StrictJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "logfleet.api.pagination.EnvelopePagination",
    "DEFAULT_SCHEMA_CLASS": "logfleet.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "logfleet.api.exceptions.exception_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "logfleet.api.negotiation.FallbackContentNegotiation",
    "UNAUTHENTICATED_USER": None,
    "DATETIME_FORMAT": "iso-8601",
    "URL_FORMAT_OVERRIDE": "format",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

# The agent socket is not an HTTP operation, so OpenAPI has no place for it but prose: here, in the
# edge tag's description (the README's "The agent socket" says the same).
EDGE_DESCRIPTION = """What agents call (X-API-Key).

**The agent socket**: WebSocket `/api/v1/edge/agents/{id}/ws` with the `X-API-Key` header (the key
needs `edge:stream`). JSON object frames of at most 64 KiB; any frame may carry `ref` (a string of
at most 64 characters, or an integer), echoed by its answer (`null` when absent).

- `{"type": "heartbeat", ref, status, version?, metrics?, config_status?, sources?}` (the heartbeat
  body's fields; needs `edge:heartbeat`) → `{"type": "heartbeat.ack", ref, status: "acknowledged",
  server_time, config_hash, streams}`; written and committed before the ack, as over HTTP.
- `{"type": "logs", ref, session_id, logs}` (the stream push's rules; `edge:stream`) →
  `{"type": "logs.ack", ref, session_id, accepted, filtered, dropped, session_status}`.
- `{"type": "stream.ack", ref, session_id}`: the agent streams that session (answered only on error).
- The server sends `{"type": "stream.start", session_id, filters, filter_query, expires_at}` and
  `{"type": "stream.stop", session_id}` as sessions start and end (starts also on connecting).
- A frame that fails: `{"type": "error", error, message, details, status, ref}` (the error envelope
  and its HTTP status; `session_id` for a logs or stream.ack frame that named a valid one); the
  socket stays open. Every frame counts against the Edge rate limit in the agent's bucket; over it,
  `error: "rate_limited"` with `retry_after` (seconds).
- An agent is `connected: true` while its socket is open on any server process.
- Close codes: 4401 key refused, revoked, expired or past its rotation's grace (with a reason);
  4403 the key lacks `edge:stream`; 4404 no such agent of the key's organization; 4413 a frame over
  64 KiB.
"""

SPECTACULAR_SETTINGS = {
    "TITLE": "LogFleet API",
    "DESCRIPTION": (
        "Control plane for edge log fleets. People authenticate with `Authorization: Bearer <JWT>`, "
        "edge agents with `X-API-Key`. Every error is `{error, message, details}`; every list is "
        '`{items, total, page, page_size}`. JSON types are strict (`{"name": 0}` is a 400, not the name '
        '"0"). No string, in a body or a query string, may hold a NUL character (U+0000): 400. A body over its '
        "size limit (1 MiB; 5 MiB for the edge metrics and stream pushes) is a 413, and one nested too deeply "
        "to decode a 400 `parse_error`; free-form objects state their own limits (heartbeat `metrics` 16 KiB, "
        "log line `metadata` 4 levels)."
    ),
    "VERSION": "1.0.0",
    # 3.1: full JSON Schema, so that label keys (`propertyNames`) are in the schema too.
    "OAS_VERSION": "3.1.0",
    # Swagger UI's groups in the order a new user needs them.
    "TAGS": [
        {"name": "auth", "description": "Register, log in, tokens and passwords"},
        {"name": "organization", "description": "The organization and its members"},
        {"name": "agents", "description": "The fleet and each agent's configuration"},
        {"name": "api-keys", "description": "Keys for agents and scrapers (admin)"},
        {"name": "metric-configs", "description": "Log-to-metric rules"},
        {"name": "metrics", "description": "Queries and the Prometheus export"},
        {"name": "dashboard", "description": "The fleet at a glance"},
        {"name": "streaming", "description": "Live log streaming"},
        {"name": "notifications", "description": "Webhook and email channels for agent transitions (admin)"},
        {"name": "edge", "description": EDGE_DESCRIPTION},
        {"name": "audit", "description": "The audit log (admin)"},
        {"name": "operations", "description": "Health and readiness"},
    ],
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "logfleet.api.schema.declare_errors",
    ],
    # One name per choice set that several fields share.
    "ENUM_NAME_OVERRIDES": {
        "AgentStatusEnum": "agents.models.AgentStatus",
        "APIKeyStatusEnum": "apikeys.models.APIKeyStatus",
        "StreamSessionStatusEnum": "streaming.models.SessionStatus",
        "UserStatusEnum": "accounts.models.UserStatus",
        "MetricTypeEnum": "metrics.models.MetricType",
        "DeliveryStatusEnum": "agents.models.DeliveryStatus",
        "ChannelKindEnum": "agents.models.ChannelKind",
        "EventTypeEnum": "agents.models.EventType",
        "SubscribableEventEnum": "agents.models.SUBSCRIBABLE_EVENTS",
    },
}

# Request bodies: 1 MiB in general, 5 MiB for the edge pushes (metrics and stream lines).
MAX_BODY_BYTES = 1024 * 1024
MAX_EDGE_PUSH_BODY_BYTES = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_EDGE_PUSH_BODY_BYTES

# --- rate limits (API.md section 1) --------------------------------------------------------

_RATE_AUTH = env_rate("LOGFLEET_RATE_AUTH", "10/m")
RATE_LIMITS = {
    "auth": _RATE_AUTH,
    # Logins, forgot-password and reset-password per target account (from any address), on top of
    # the per-IP limit of the group above; by default the same rate.
    "auth_account": env_rate("LOGFLEET_RATE_AUTH_ACCOUNT", _RATE_AUTH),
    "dashboard": env_rate("LOGFLEET_RATE_DASHBOARD", "60/m"),
    "agents": env_rate("LOGFLEET_RATE_AGENTS", "100/m"),
    "edge": env_rate("LOGFLEET_RATE_EDGE", "1000/m"),
    "streaming": env_rate("LOGFLEET_RATE_STREAMING", "10/m"),
}

# --- product settings ----------------------------------------------------------------------

AGENT_OFFLINE_AFTER = env_seconds("AGENT_OFFLINE_AFTER", 90)
# How long an agent stays `connected` after the last sign of its socket's process (agents.presence).
AGENT_PRESENCE_SECONDS = env_seconds("AGENT_PRESENCE_SECONDS", 30)
STREAM_MAX_LINES_PER_SECOND = env_int("STREAM_MAX_LINES_PER_SECOND", 500, minimum=1)
# Per session, counted in bytes of the frames viewers get (a line of 64 KiB is within it).
STREAM_MAX_BYTES_PER_SECOND = env_int("STREAM_MAX_BYTES_PER_SECOND", 1024 * 1024, minimum=1)
STREAM_MAX_ACTIVE_PER_AGENT = env_int("STREAM_MAX_ACTIVE_PER_AGENT", 5, minimum=1)
STREAM_MAX_ACTIVE_PER_ORG = env_int("STREAM_MAX_ACTIVE_PER_ORG", 20, minimum=1)
# How often an open WebSocket (viewer or agent) checks its token or key again, in case it missed the
# event that ended it (logfleet.realtime); the agent's heartbeat interval.
STREAM_SOCKET_RECHECK_SECONDS = env_seconds("STREAM_SOCKET_RECHECK_SECONDS", 30)
# A stream session with no viewer this long ends (end_reason "idle"): nobody watching, no lines leave.
STREAM_IDLE_SECONDS = env_seconds("STREAM_IDLE_SECONDS", 60)
# What a viewer's socket may hold on its way out while the viewer is not reading; past it, its
# lines are dropped and counted for it alone (streaming.outbox).
STREAM_VIEWER_QUEUE_BYTES = env_int("STREAM_VIEWER_QUEUE_BYTES", 1024 * 1024, minimum=1)
METRICS_RETENTION_DAYS = env_int("METRICS_RETENTION_DAYS", 30, minimum=1)
METRIC_MAX_SERIES_PER_NAME = env_int("METRIC_MAX_SERIES_PER_NAME", 1000, minimum=1)
METRIC_MAX_NAMES_PER_AGENT = env_int("METRIC_MAX_NAMES_PER_AGENT", 1000, minimum=1)
# What one organization may hold: every tenant is bounded by what it costs the others.
MAX_AGENTS_PER_ORG = env_int("MAX_AGENTS_PER_ORG", 10000, minimum=1)
MAX_METRIC_CONFIGS_PER_ORG = env_int("MAX_METRIC_CONFIGS_PER_ORG", 200, minimum=1)
MAX_API_KEYS_PER_ORG = env_int("MAX_API_KEYS_PER_ORG", 1000, minimum=1)
MAX_MEMBERS_PER_ORG = env_int("MAX_MEMBERS_PER_ORG", 1000, minimum=1)
# Audit events and ended stream sessions older than this are deleted by `manage.py prune_history`.
HISTORY_RETENTION_DAYS = env_int("HISTORY_RETENTION_DAYS", 365, minimum=1)
# POST /metric-configs/test (metrics/trial.py): work refused upfront (line bytes times rules), the time
# a run may take before it stops and reports, and the largest answer.
METRIC_TEST_MAX_WORK = env_int("METRIC_TEST_MAX_WORK", 10_000_000, minimum=1)
METRIC_TEST_DEADLINE_MS = env_int("METRIC_TEST_DEADLINE_MS", 2000, minimum=1)
METRIC_TEST_MAX_RESPONSE_BYTES = env_int("METRIC_TEST_MAX_RESPONSE_BYTES", 2 * 1024 * 1024, minimum=1024)
# Notifications (API.md section 11): how often `manage.py sendalerts` looks for agent transitions and due
# deliveries; whether webhook URLs may point at loopback and private addresses; seconds per webhook
# attempt; channels per organization; how long finished deliveries (and their events) are kept.
ALERT_SWEEP_SECONDS = env_seconds("ALERT_SWEEP_SECONDS", 10)
WEBHOOK_ALLOW_PRIVATE = env_bool("WEBHOOK_ALLOW_PRIVATE", False)
WEBHOOK_TIMEOUT = env_int("WEBHOOK_TIMEOUT", 10, minimum=1, maximum=300)
MAX_NOTIFICATION_CHANNELS_PER_ORG = env_int("MAX_NOTIFICATION_CHANNELS_PER_ORG", 50, minimum=1)
NOTIFICATION_RETENTION_DAYS = env_int("NOTIFICATION_RETENTION_DAYS", 30, minimum=1, maximum=36_500)
# Webhook signing secrets are stored encrypted with a key derived from this (by default SECRET_KEY): to
# rotate SECRET_KEY without re-creating every webhook channel, set WEBHOOK_SECRET_KEY to the old one first.
WEBHOOK_SECRET_KEY = env_str("WEBHOOK_SECRET_KEY", "") or SECRET_KEY
API_KEY_ENV = env_str("API_KEY_ENV", "prod")
if API_KEY_ENV not in {"prod", "dev"}:
    _fail("API_KEY_ENV", API_KEY_ENV, "prod or dev")

# --- email ---------------------------------------------------------------------------------

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(BASE_DIR / "sent-emails"))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "LogFleet <noreply@localhost>")
# The SMTP backend's server (EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend).
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)

# --- i18n, static files --------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# The app serves its own static files (Swagger UI, admin) also with DEBUG=false and no collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- security ------------------------------------------------------------------------------

# HTTPS. PUBLIC_URL only builds links (emails): it never turns on a redirect. Whether a request
# came over HTTPS is what the connection says, or, with TRUSTED_PROXY_COUNT >= 1, what the trusted
# TLS proxy says in X-Forwarded-Proto; request.is_secure(), HSTS and the ws:// or wss:// scheme of
# websocket_url follow it. Agents and probes speaking plain HTTP to the process are served.
_HTTPS = PUBLIC_URL.startswith("https://")
SESSION_COOKIE_SECURE = _HTTPS
CSRF_COOKIE_SECURE = _HTTPS
CSRF_TRUSTED_ORIGINS = [PUBLIC_URL]
# The dashboard's cookies (UI.md, Sessions): the session cookie is HttpOnly (Django's default), every
# cookie SameSite=Lax and Secure under HTTPS. A browser stays signed in as long as a refresh token
# would live; the LogFleet session behind it can end sooner (logout, password change, deactivation).
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = JWT_REFRESH_TTL
CSRF_FAILURE_VIEW = "logfleet.views.csrf_failure"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if TRUSTED_PROXY_COUNT:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Opt-in: plain-HTTP requests are refused (the API, with a JSON error) or redirected (pages),
# by logfleet.api.middleware.HTTPSOnlyMiddleware; /healthz and /readyz are always served.
HTTPS_ONLY = env_bool("HTTPS_ONLY", False)
# HSTS is sent on HTTPS responses only (SecurityMiddleware); preloading is a commitment an
# operator makes on purpose.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if _HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [
    # SECURE_SSL_REDIRECT stays off: an agent's POST cannot follow a redirect, so the API is never
    # redirected (HTTPS_ONLY refuses instead, and the TLS proxy redirects browsers).
    "security.W008",
    # HSTS preload is opt-in (SECURE_HSTS_PRELOAD).
    "security.W021",
]

# --- logging -------------------------------------------------------------------------------

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"redact_tokens": {"()": "logfleet.logsafety.RedactTokens"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_tokens"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "django.channels.server": {"level": "WARNING"},
        # Uvicorn's loggers write through the root's console handler (and the token filter): Uvicorn
        # set them not to propagate to its own handlers, which this configuration replaces.
        "uvicorn.access": {"filters": ["redact_tokens"], "propagate": True},
        "uvicorn.error": {"filters": ["redact_tokens"], "propagate": True},
    },
}
