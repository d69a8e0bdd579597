from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from agents import selectors, services
from agents.models import Agent
from agents.serializers import (
    AgentConfigUpdateSerializer,
    AgentConfigVersionSerializer,
    AgentFilterSerializer,
    AgentSerializer,
    AgentWriteSerializer,
)
from logfleet.api.client import client_ip
from logfleet.api.permissions import MemberWrites
from logfleet.api.views import BaseGenericViewSet, caller_organization_id, validated_body, validated_query
from logfleet.errors import VersionConflict


@extend_schema_view(
    list=extend_schema(
        summary="Agents (default order: name)",
        parameters=[AgentFilterSerializer],
    ),
    create=extend_schema(
        summary="Pre-provision an agent", request=AgentWriteSerializer, responses={201: AgentSerializer}
    ),
    partial_update=extend_schema(request=AgentWriteSerializer(partial=True), responses={200: AgentSerializer}),
    destroy=extend_schema(responses={204: None}),
)
@extend_schema(tags=["agents"])
class AgentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, BaseGenericViewSet):
    rate_group = "agents"
    permission_classes = [MemberWrites]
    serializer_class = AgentSerializer
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no caller
            return Agent.objects.none()
        organization_id = caller_organization_id(self.request)
        if self.action != "list":
            return selectors.agents_with_status(organization_id=organization_id)
        filters = validated_query(AgentFilterSerializer, self.request)
        return selectors.agent_list(
            organization_id=organization_id,
            status=filters.get("status"),
            labels=filters.get("label", ()),
            search=filters.get("search"),
            ordering=filters["ordering"],
        )

    def _reload(self, agent: Agent) -> Agent:
        return selectors.agent_get(organization_id=agent.organization_id, agent_id=agent.pk)

    def create(self, request):
        data = validated_body(AgentWriteSerializer, request)
        agent = services.agent_create(
            organization=request.user.organization,
            actor=request.user,
            ip_address=client_ip(request),
            **data,
        )
        return Response(AgentSerializer(self._reload(agent)).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        agent = self.get_object()
        data = validated_body(AgentWriteSerializer, request, partial=True)
        agent = services.agent_update(agent=agent, actor=request.user, ip_address=client_ip(request), **data)
        return Response(AgentSerializer(self._reload(agent)).data)

    def destroy(self, request, pk=None):
        services.agent_delete(agent=self.get_object(), actor=request.user, ip_address=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        methods=["GET"],
        summary="The agent's configuration, defaults filled in",
        responses={200: AgentConfigVersionSerializer},
    )
    @extend_schema(
        methods=["PUT"],
        summary="Replace the configuration; `version` must be the current one",
        request=AgentConfigUpdateSerializer,
        responses={200: AgentConfigVersionSerializer, 409: OpenApiResponse(description="version_conflict")},
    )
    @action(detail=True, methods=["get", "put"])
    def config(self, request, pk=None):
        agent = self.get_object()
        if request.method == "GET":
            return Response(AgentConfigVersionSerializer(selectors.agent_config_get(agent=agent)).data)
        data = validated_body(AgentConfigUpdateSerializer, request)
        version = data["version"]
        if version != agent.config_version:
            raise VersionConflict(current_version=agent.config_version)
        agent = services.agent_config_update(
            agent=agent,
            version=version,
            config=data["config"],
            actor=request.user,
            ip_address=client_ip(request),
        )
        return Response(AgentConfigVersionSerializer(selectors.agent_config_get(agent=agent)).data)
