"""The Edge API: thin endpoints for agents (X-API-Key) over the services of the apps below."""

import uuid

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from agents import services as agent_services
from agents.models import Agent
from agents.serializers import AgentSerializer
from apikeys.authentication import APIKeyAuthentication, requires_key_permission
from edge import heartbeat
from edge.serializers import (
    CompatHeartbeatSerializer,
    HeartbeatResponseSerializer,
    HeartbeatSerializer,
    RegisterSerializer,
)
from logfleet.api.client import client_ip
from logfleet.api.views import BaseAPIView

AGENT_NOT_FOUND = "No such agent in the organization of this API key"


class EdgeView(BaseAPIView):
    authentication_classes = [APIKeyAuthentication]
    rate_group = "edge"

    def get_rate_key(self, request):
        """Per agent (API.md section 1); per key when the request names no agent."""
        agent_id = self.kwargs.get("agent_id")
        if agent_id is None and isinstance(request.data, dict):
            agent_id = request.data.get("agent_id")
        if agent_id is not None:
            return f"agent:{str(agent_id)[:64]}"
        return super().get_rate_key(request)


@extend_schema(
    tags=["edge"],
    summary="Register an agent (idempotent by name)",
    request=RegisterSerializer,
    responses={201: AgentSerializer, 200: AgentSerializer},
)
class RegisterView(EdgeView):
    permission_classes = [requires_key_permission("edge:register")]

    def post(self, request):
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        agent, created = agent_services.agent_register(
            organization_id=request.auth.organization_id,
            ip_address=client_ip(request),
            key_id=request.auth.id,
            actor_email="",
            **serializer.validated_data,
        )
        body = AgentSerializer(Agent.objects.with_status().get(pk=agent.pk)).data
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
    )
    if config_hash is None:
        raise NotFound(AGENT_NOT_FOUND)
    return Response(
        {
            "status": "acknowledged",
            "server_time": timezone.now().isoformat().replace("+00:00", "Z"),
            "config_hash": config_hash,
            "streams": [],
        }
    )


@extend_schema(
    tags=["edge"],
    summary="Heartbeat",
    request=HeartbeatSerializer,
    responses={200: HeartbeatResponseSerializer, 404: OpenApiResponse(description="not an agent of the key's org")},
)
class HeartbeatView(EdgeView):
    permission_classes = [requires_key_permission("edge:heartbeat")]

    def post(self, request, agent_id: uuid.UUID):
        return _acknowledge(request, agent_id, heartbeat.parse(request.data))


@extend_schema(
    tags=["edge"],
    summary="Heartbeat (compat: agent_id in the body)",
    request=CompatHeartbeatSerializer,
    responses={200: HeartbeatResponseSerializer},
)
class CompatHeartbeatView(EdgeView):
    permission_classes = [requires_key_permission("edge:heartbeat")]

    def post(self, request):
        fields = heartbeat.parse(request.data, with_agent_id=True)
        return _acknowledge(request, fields["agent_id"], fields)
