from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from agents import selectors as agent_selectors
from logfleet.api.client import client_ip
from logfleet.api.permissions import MemberWrites
from logfleet.api.views import BaseGenericViewSet, caller_organization_id, validated_body, validated_query
from streaming import selectors, services
from streaming.models import StreamSession
from streaming.serializers import (
    SessionFilterSerializer,
    StreamSessionSerializer,
    StreamStartedSerializer,
    StreamStartSerializer,
    StreamStopSerializer,
)


@extend_schema_view(
    list=extend_schema(
        summary="Stream sessions, newest first",
        parameters=[SessionFilterSerializer],
    ),
    retrieve=extend_schema(summary="One stream session"),
)
@extend_schema(tags=["streaming"])
class StreamViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, BaseGenericViewSet):
    """Viewers may list and watch; admins and members start and stop."""

    rate_group = "streaming"
    permission_classes = [MemberWrites]
    serializer_class = StreamSessionSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no caller
            return StreamSession.objects.none()
        filters = validated_query(SessionFilterSerializer, self.request) if self.action == "list" else {}
        return selectors.session_list(
            organization_id=caller_organization_id(self.request),
            agent_id=filters.get("agent_id"),
            status=filters.get("status"),
        )

    def _started_body(self, session) -> dict:
        data = StreamSessionSerializer(session, context={"request": self.request}).data
        return {
            "session_id": data["id"],
            "agent_id": data["agent_id"],
            "status": data["status"],
            "websocket_url": data["websocket_url"],
            "session": data,
        }

    @extend_schema(
        summary="Start watching an agent's live lines",
        request=StreamStartSerializer,
        responses={201: StreamStartedSerializer, 409: OpenApiResponse(description="agent offline, or a cap reached")},
    )
    @action(detail=False, methods=["post"], url_path="start")
    def start(self, request):
        data = validated_body(StreamStartSerializer, request)
        agent = agent_selectors.agent_get(organization_id=request.user.organization_id, agent_id=data["agent_id"])
        session = services.stream_start(
            agent=agent,
            user=request.user,
            timeout_seconds=data["timeout_seconds"],
            filters=data["filters"],
            filter_query=data["filter_query"],
            ip_address=client_ip(request),
        )
        return Response(self._started_body(session), status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Stop a session (repeating it is harmless)",
        request=StreamStopSerializer,
        responses={200: StreamStartedSerializer},
    )
    @action(detail=False, methods=["post"], url_path="stop")
    def stop(self, request):
        data = validated_body(StreamStopSerializer, request)
        session = get_object_or_404(self.get_queryset().select_related("organization"), pk=data["session_id"])
        session = services.stream_stop(session=session, user=request.user, ip_address=client_ip(request))
        return Response(self._started_body(session))
