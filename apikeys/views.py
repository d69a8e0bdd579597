from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apikeys import selectors, services
from apikeys.models import APIKey
from apikeys.serializers import (
    APIKeyCreatedSerializer,
    APIKeyCreateSerializer,
    APIKeyFilterSerializer,
    APIKeyRotatedSerializer,
    APIKeyRotateSerializer,
    APIKeySerializer,
)
from logfleet.api.client import client_ip
from logfleet.api.permissions import AdminOnly
from logfleet.api.views import BaseGenericViewSet, caller_organization_id, validated_body, validated_query


@extend_schema_view(
    list=extend_schema(
        summary="API keys, newest first",
        parameters=[APIKeyFilterSerializer],
    ),
    retrieve=extend_schema(summary="One API key (never the key itself)"),
    create=extend_schema(request=APIKeyCreateSerializer, responses={201: APIKeyCreatedSerializer}),
    destroy=extend_schema(summary="Revoke (idempotent); the key fails on the very next request", responses={204: None}),
)
@extend_schema(tags=["api-keys"])
class APIKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, BaseGenericViewSet):
    rate_group = "agents"
    permission_classes = [AdminOnly]
    serializer_class = APIKeySerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no caller
            return APIKey.objects.none()
        filters = validated_query(APIKeyFilterSerializer, self.request) if self.action == "list" else {}
        return selectors.api_key_list(organization_id=caller_organization_id(self.request), **filters)

    def _actor(self):
        return services.Actor(user=self.request.user, ip_address=client_ip(self.request))

    def create(self, request):
        data = validated_body(APIKeyCreateSerializer, request)
        key, raw = services.api_key_create(organization=request.user.organization, actor=self._actor(), **data)
        return Response({"api_key": APIKeySerializer(key).data, "raw_key": raw}, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        services.api_key_revoke(key=self.get_object(), actor=self._actor())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Rotate: a new key with the same name and permissions; the old one works until the grace ends",
        request=APIKeyRotateSerializer,
        responses={201: APIKeyRotatedSerializer},
    )
    @action(detail=True, methods=["post"])
    def rotate(self, request, pk=None):
        key = self.get_object()
        data = validated_body(APIKeyRotateSerializer, request)
        new_key, raw = services.api_key_rotate(key=key, grace_seconds=data["grace_seconds"], actor=self._actor())
        key.refresh_from_db()
        return Response(
            {
                "api_key": APIKeySerializer(new_key).data,
                "raw_key": raw,
                "previous": {"id": str(key.pk), "expires_at": APIKeySerializer(key).data["expires_at"]},
            },
            status=status.HTTP_201_CREATED,
        )
