"""Schemathesis, every check on, against the live OpenAPI schema of a running server (API.md sections 0 and 9).

Schemathesis's own engine (what its CLI runs), driven from pytest: the examples, coverage, fuzzing and
stateful phases (the stateful one follows the schema's links from each create to its retrieve, update
and delete), every check (`--checks all`: server errors, status codes, content types, headers and
bodies as declared, schema-violating requests refused, schema-valid ones accepted, credentials never
ignored, deleted resources gone, ...), a fixed seed and a few examples per operation, one new
organization per run. One pass as an admin (JWT), one with an edge key holding every permission.

What JSON Schema cannot say, said here, each with its reason (the only allowances):
- a schema-valid request may be refused 400 where the contract itself refuses it for a reason no
  schema states (`SCHEMA_VALID_BUT_REFUSED`): a password Django's validators refuse, a reset token
  that is not one, an expiry in the past, an RE2 pattern that does not compile or a capture beyond
  its groups, a time range over 31 days...;
- a body over the size limit (1 MiB; 5 MiB for the edge pushes) is 413 whatever it holds;
- generated strings hold no NUL character: the schema's description says every one is refused (400),
  in bodies and query strings alike, since PostgreSQL cannot store it.
"""

import uuid
from urllib.parse import urlencode

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER

from accounts.models import Role
from accounts.tests.factories import UserFactory
from apikeys.keys import PERMISSIONS
from apikeys.tests.factories import make_key
from bench.live import LiveServer
from conftest import client_for

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

ROOMY_LIMITS = {
    f"LOGFLEET_RATE_{group.upper()}": "1000000/m"
    for group in ("auth", "auth_account", "dashboard", "agents", "edge", "streaming")
}
SEED = 20261126
# What a schema-valid request may be answered: Schemathesis's defaults, and 413 (a body over the size limit).
ACCEPTED = ["2xx", "3xx", 401, 403, 404, 409, 413, 429]
# Daphne (Twisted) refuses a request line over 16 KiB with a bare 400 before the API sees it; repeated
# query parameters, each within its bounds, can add up to more. Such queries are not generated.
MAX_QUERY_BYTES = 12 * 1024

# Operation → why the contract refuses (400) some requests its schema allows.
SCHEMA_VALID_BUT_REFUSED = {
    "POST /api/v1/auth/register": "Django's password validators (too common, too similar to the email...); "
    "Django's email validator, stricter than JSON Schema's email format (a one-letter top-level domain)",
    "POST /api/v1/auth/forgot-password": "Django's email validator (as on register)",
    "POST /api/v1/organization/members": "Django's email validator (as on register)",
    "POST /api/v1/auth/reset-password": "a token that is not a live reset link; the password validators",
    "POST /api/v1/auth/change-password": "the current password must be right; the password validators",
    "POST /api/v1/api-keys": "expires_at must be in the future",
    "POST /api/v1/metric-configs": "rules: RE2 patterns that compile, captures within the pattern's groups, "
    "value_capture required for gauges and histograms and forbidden for counters, buckets only for histograms",
    "PUT /api/v1/metric-configs/{id}": "the rules, as on create",
    "PATCH /api/v1/metric-configs/{id}": "the rules, as on create",
    "POST /api/v1/metric-configs/test": "the rules, as on create; metrics or config_id, exactly one",
    "PUT /api/v1/agents/{id}/config": "log source names unique within the config",
    "GET /api/v1/metrics/query": "start before end, at most 31 days and 11 000 buckets; group_by keys distinct",
    "POST /api/v1/edge/agents/{agent_id}/metrics": "histogram buckets cumulative and ending at +Inf",
    "POST /api/v1/notification-channels": "the SSRF guard: a webhook URL whose host does not resolve, or resolves "
    "to a loopback, private, link-local or multicast address; a URL urlsplit cannot read (a port out of range), "
    "with credentials or a #fragment; Django's email validator (as on register)",
    "PATCH /api/v1/notification-channels/{id}": "the channel's kind cannot change and `url` or `email` must be "
    "its kind's (the schema cannot see the stored channel); the URL and email rules, as on create",
}


# Operations whose answers a check misreads, with the reason.
CHECK_EXCEPTIONS = [
    # DELETE revokes a key (API.md section 4): it stays readable, with status "revoked".
    {
        "include-name": ["DELETE /api/v1/api-keys/{id}", "GET /api/v1/api-keys/{id}"],
        "checks": {"use_after_free": {"enabled": False}},
    },
]


def _config(header: dict[str, str], operations_filter: dict) -> SchemathesisConfig:
    allowances = [
        {
            "include-name": [label],
            "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, 400]}},
        }
        for label in SCHEMA_VALID_BUT_REFUSED
    ]
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "color": False,
            "headers": header,
            # Generous: a loaded CI machine hashes passwords (Argon2) slowly; a timeout is a failure.
            "request-timeout": 60,
            # One worker: a fixed seed then gives one run (parallel workers race on shared resources).
            "workers": 1,
            # The run's credential is the header above; generating the schema's other scheme beside it (an
            # X-API-Key next to the Bearer token) would be a request with two credentials, refused 401.
            "generation": {"max-examples": 8, "allow-x00": False, "with-security-parameters": False},
            "checks": {
                "enabled": True,
                "positive_data_acceptance": {"expected-statuses": ACCEPTED},
                "negative_data_rejection": {
                    "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
                },
            },
            "phases": {"stateful": {"max-steps": 20}},
            "operations": [*allowances, *CHECK_EXCEPTIONS, operations_filter],
        }
    )


def _failures(url: str, header: dict[str, str], operations_filter: dict, *, protected_member=None) -> list[str]:
    """Every failed check and error of one run, as readable lines (operation, check, request, answer)."""
    config = _config(header, operations_filter)
    schema = schemathesis.openapi.from_url(f"{url}/api/v1/schema?format=json", config=config)

    @schema.hook
    def filter_query(context, query):
        return query is None or len(urlencode(query, doseq=True)) <= MAX_QUERY_BYTES

    def before_call(context, case, kwargs):
        # The caller's own member record is not the run's to change (see the test).
        if case.path_parameters and str(case.path_parameters.get("id")) == str(protected_member):
            case.path_parameters["id"] = str(uuid.uuid4())

    found = []
    # A global hook (Schemathesis has no per-schema before_call), for this run only.
    GLOBAL_HOOK_DISPATCHER.hook(before_call)
    try:
        run = list(from_schema(schema).execute())
    finally:
        GLOBAL_HOOK_DISPATCHER.unregister(before_call)
    for event in run:
        if isinstance(event, (events.NonFatalError, events.FatalError)):
            found.append(f"error: {getattr(event, 'info', event)}")
        if isinstance(event, events.ScenarioFinished) and event.status in (Status.FAILURE, Status.ERROR):
            found += _described(event.recorder)
    return found


def _described(recorder) -> list[str]:
    lines = []
    for case_id, checks in recorder.checks.items():
        interaction = recorder.interactions.get(case_id)
        request, response = (interaction.request, interaction.response) if interaction else (None, None)
        for check in checks:
            if check.status != Status.FAILURE:
                continue
            message = check.failure_info.failure.message if check.failure_info else ""
            lines.append(f"{recorder.label}: {check.name}: {message}")
            if request is not None:
                lines.append(f"  {request.method} {request.uri[:500]}\n  body: {(request.body or b'')[:300]!r}")
            if response is not None:
                lines.append(f"  -> {response.status_code} {(response.content or b'')[:300]!r}")
    return lines


def test_the_api_honours_its_schema_with_every_check(org):
    admin = UserFactory(organization=org, role=Role.ADMIN)
    token = client_for(admin).tokens.token
    raw_key = make_key(org, permissions=list(PERMISSIONS))[1]
    server = LiveServer(ROOMY_LIMITS, access_log=False)
    try:
        # Logging out or changing the password would end the run's own session, and so would the
        # caller deactivating or demoting itself once a fuzzed invitation made a second admin: the
        # caller's own member record is left alone (the last-admin rule is tested in accounts).
        people = _failures(
            server.url,
            {"Authorization": f"Bearer {token}"},
            {"include-path-regex": r"/auth/(logout|change-password)|/edge/", "enabled": False},
            protected_member=admin.pk,
        )
        assert not people, "\n".join(people)
        agents = _failures(
            server.url, {"X-API-Key": raw_key}, {"exclude-path-regex": r"/edge/|/metrics/export", "enabled": False}
        )
        assert not agents, "\n".join(agents)
        assert "unhandled error" not in server.output(full=True), server.output()
    finally:
        server.stop()
