"""The Edge API: thin endpoints for agents (X-API-Key) over the services of the apps below."""

import uuid

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from agents import config as agent_config
from agents import heartbeats
from agents import selectors as agent_selectors
from agents import services as agent_services
from agents.models import Agent
from agents.serializers import AgentSerializer
from apikeys import services as apikey_services
from apikeys.authentication import APIKeyAuthentication, requires_key_permission
from edge import heartbeat_body
from edge.serializers import (
    AgentRegisterSerializer,
    CompatHeartbeatSerializer,
    HeartbeatResponseSerializer,
    HeartbeatSerializer,
    IngestResultSerializer,
    MetricsPushSerializer,
    StreamPushResultSerializer,
    StreamPushSerializer,
    SyncConfigSerializer,
)
from logfleet import shared_cache
from logfleet.api.client import client_ip
from logfleet.api.views import BaseAPIView, validated_body
from logfleet.errors import Invalid, NotFound
from metrics import configs as metric_configs
from metrics import ingest
from metrics.serializers import MetricConfigSerializer
from streaming import selectors as stream_selectors
from streaming import services as stream_services

AGENT_NOT_FOUND = "No such agent in the organization of this API key"


def _as_uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return None


class EdgeView(BaseAPIView):
    """An endpoint of the Edge API.

    Rate limit (API.md section 1): only requests whose key authenticated are counted. A request
    for an agent of the key's organization counts in the bucket of that key and agent; any other
    (`/edge/register`, an agent of another organization, a missing agent, a malformed id) in the
    key's own bucket. So nobody can spend an agent's limit without a key of its organization, and
    a key cannot escape its limit by naming agents that are not its own. A request without a key,
    or with a malformed, unknown, expired or revoked one, is refused 401 before any counter: a
    missing or malformed key costs no I/O at all, an unknown well-formed one the read of its
    key records (one indexed query, then cached like every key record).
    """

    authentication_classes = [APIKeyAuthentication]
    rate_group = "edge"

    def dispatch(self, request, *args, **kwargs):
        record = apikey_services.record_cache_key(request.META.get(APIKeyAuthentication.header, "").strip())
        if record is None:  # no key, or not one of ours: refused without a cache read
            return super().dispatch(request, *args, **kwargs)
        # What an edge request reads from the shared cache (the key's records and, for an agent's
        # URL, its identity and stream instructions) in one round trip instead of one each.
        records = [record]
        agent_id = self.url_agent_id(request, kwargs)
        if agent_id is not None:
            records += [heartbeats.identity_key(agent_id), stream_selectors.instructions_key(agent_id)]
        with shared_cache.prefetched(*records):
            return super().dispatch(request, *args, **kwargs)

    def url_agent_id(self, request, kwargs) -> uuid.UUID | None:
        """The agent named by the URL (path or query string), known before the request is parsed."""
        return kwargs.get("agent_id")

    def rate_agent_id(self, request) -> uuid.UUID | None:
        """The agent the request is for, as far as it can be told before the view runs."""
        return self.url_agent_id(request, self.kwargs)

    def get_rate_key(self, request):
        principal = request.auth
        if not isinstance(principal, apikey_services.KeyPrincipal):
            return None  # no key: the permission check answers 401, nothing is counted
        agent_id = self.rate_agent_id(request)
        if agent_id is not None:
            # Read from the request's prefetch (or the shared cache), as the heartbeat itself does.
            identity = heartbeats.agent_identity(agent_id)
            if identity is not None and identity.organization_id == principal.organization_id:
                return f"{principal.rate_key}:agent:{agent_id}"
        return principal.rate_key


@extend_schema(
    tags=["edge"],
    summary="Register an agent (idempotent by name)",
    request=AgentRegisterSerializer,
    responses={201: AgentSerializer, 200: AgentSerializer},
)
class RegisterView(EdgeView):
    permission_classes = [requires_key_permission("edge:register")]

    def post(self, request):
        data = validated_body(AgentRegisterSerializer, request)
        agent, created = agent_services.agent_register(
            organization_id=request.auth.organization_id,
            ip_address=client_ip(request),
            key_id=request.auth.id,
            actor_email="",
            **data,
        )
        body = AgentSerializer(agent_selectors.agent_get(organization_id=agent.organization_id, agent_id=agent.pk)).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _acknowledge(request, agent_id: uuid.UUID, fields: dict) -> Response:
    config_hash = agent_services.agent_heartbeat(
        organization_id=request.auth.organization_id,
        agent_id=agent_id,
        status=fields["status"],
        ip_address=client_ip(request),
        version=fields["version"],
        system_metrics=fields["metrics"],
        config_report=fields["config_report"],
        sources=fields["sources"],
    )
    if config_hash is None:
        raise NotFound(AGENT_NOT_FOUND)
    return Response(heartbeat_body.answer(agent_id, config_hash))


@extend_schema(
    tags=["edge"],
    summary="Heartbeat",
    request=HeartbeatSerializer,
    responses={200: HeartbeatResponseSerializer, 404: OpenApiResponse(description="not an agent of the key's org")},
)
class HeartbeatView(EdgeView):
    permission_classes = [requires_key_permission("edge:heartbeat")]

    def post(self, request, agent_id: uuid.UUID):
        return _acknowledge(request, agent_id, heartbeat_body.parse(request.data))


@extend_schema(
    tags=["edge"],
    summary="Heartbeat (compat: agent_id in the body)",
    request=CompatHeartbeatSerializer,
    responses={200: HeartbeatResponseSerializer},
)
class CompatHeartbeatView(EdgeView):
    permission_classes = [requires_key_permission("edge:heartbeat")]

    def rate_agent_id(self, request):
        data = request.data
        return _as_uuid(data.get("agent_id")) if isinstance(data, dict) else None

    def post(self, request):
        fields = heartbeat_body.parse(request.data, with_agent_id=True)
        return _acknowledge(request, fields["agent_id"], fields)


def _agent_of_key(request, agent_id) -> Agent:
    agent = Agent.objects.filter(pk=agent_id, organization_id=request.auth.organization_id).first()
    if agent is None:
        raise NotFound(AGENT_NOT_FOUND)
    return agent


def _sync(request, agent: Agent) -> Response:
    memo: dict = {}
    configs = metric_configs.configs_for_agent(agent, memo)
    # The hash of what we are about to answer (the agent's stored config_hash, refreshed if stale).
    agent_services.agent_refresh_config_hash(agent=agent, memo=memo)
    etag = f'"{agent.config_hash}"'
    if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
        return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
    body = {
        "hash": agent.config_hash,
        "agent_config": agent_config.normalize(agent.config),
        "configs": MetricConfigSerializer(configs, many=True).data,
    }
    return Response(body, headers={"ETag": etag})


@extend_schema(
    tags=["edge"],
    summary="Everything the agent should run (ETag; 304 when unchanged)",
    responses={200: SyncConfigSerializer, 304: OpenApiResponse(description="unchanged (If-None-Match)")},
)
class SyncConfigView(EdgeView):
    permission_classes = [requires_key_permission("edge:metrics")]

    def get(self, request, agent_id: uuid.UUID):
        return _sync(request, _agent_of_key(request, agent_id))


@extend_schema(
    tags=["edge"],
    summary="Everything the agent should run (compat: ?agent_id=)",
    parameters=[OpenApiParameter("agent_id", OpenApiTypes.UUID, required=True)],
    responses={200: SyncConfigSerializer, 304: OpenApiResponse(description="unchanged (If-None-Match)")},
)
class CompatSyncConfigView(EdgeView):
    permission_classes = [requires_key_permission("edge:metrics")]

    def url_agent_id(self, request, kwargs):
        return _as_uuid(request.GET.get("agent_id"))

    def get(self, request):
        errors: dict = {}
        agent_id = heartbeat_body.parse_uuid(request.query_params.get("agent_id"), "agent_id", errors)
        if errors:
            raise Invalid(details=errors)
        return _sync(request, _agent_of_key(request, agent_id))


@extend_schema(
    tags=["edge"],
    summary="Push metric samples (idempotent per batch_id)",
    description=(
        "Each sample refused is an entry of `errors` (its index and why); the others are stored. Besides the "
        "sample's own checks, a sample of a family new to the agent is refused when its names in the Prometheus "
        "export would collide with a family the organization has (a histogram `lat` exports `lat_bucket`, "
        "`lat_sum` and `lat_count`: a counter `lat_count` beside it is refused, as is a gauge `x` beside a counter "
        "`x`); the message names both."
    ),
    request=MetricsPushSerializer,
    responses={202: IngestResultSerializer},
)
class MetricsPushView(EdgeView):
    permission_classes = [requires_key_permission("edge:metrics")]

    def post(self, request, agent_id: uuid.UUID):
        agent = _agent_of_key(request, agent_id)
        data = request.data
        if not isinstance(data, dict):
            raise Invalid(details={"non_field_errors": "the body must be a JSON object"})
        try:
            result = ingest.ingest(agent=agent, batch_id=data.get("batch_id"), samples=data.get("samples"))
        except ingest.AgentGone:
            raise NotFound(AGENT_NOT_FOUND) from None
        return Response(result.as_dict(), status=status.HTTP_202_ACCEPTED)


@extend_schema(
    tags=["edge"],
    summary="Push live log lines of a stream session",
    request=StreamPushSerializer,
    responses={
        202: StreamPushResultSerializer,
        404: OpenApiResponse(description="no such session of this agent"),
        410: OpenApiResponse(description="the session is over: stop streaming"),
    },
)
class StreamPushView(EdgeView):
    permission_classes = [requires_key_permission("edge:stream")]

    def post(self, request, agent_id: uuid.UUID):
        agent = _agent_of_key(request, agent_id)
        data = request.data
        if not isinstance(data, dict):
            raise Invalid(details={"non_field_errors": "the body must be a JSON object"})
        errors: dict = {}
        session_id = heartbeat_body.parse_uuid(data.get("session_id"), "session_id", errors)
        if errors:
            raise Invalid(details=errors)
        lines = stream_services.clean_lines(data.get("logs"))
        result = stream_services.stream_push(
            session_id=session_id, agent_id=agent.pk, organization_id=agent.organization_id, lines=lines
        )
        return Response(result, status=status.HTTP_202_ACCEPTED)
