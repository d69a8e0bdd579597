from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from agents.models import NotificationChannel
from agents.notifications import selectors, services
from agents.notifications.serializers import (
    NotificationChannelCreatedSerializer,
    NotificationChannelCreateSchema,
    NotificationChannelSerializer,
    NotificationChannelUpdateSerializer,
    NotificationDeliverySerializer,
    create_serializer_for,
)
from logfleet.api.client import client_ip
from logfleet.api.permissions import AdminOnly
from logfleet.api.views import BaseGenericViewSet, caller_organization_id, validated_body

LIMITS = (
    "At most MAX_NOTIFICATION_CHANNELS_PER_ORG (default 50) channels per organization (409 `conflict` with "
    "`details.limit` past it); names unique in the organization (409)."
)


@extend_schema_view(
    list=extend_schema(summary="Notification channels, by name"),
    retrieve=extend_schema(summary="One notification channel"),
    create=extend_schema(
        summary="Add a webhook or email channel; a webhook's signing secret is answered once",
        description=LIMITS,
        request=NotificationChannelCreateSchema,
        responses={201: NotificationChannelCreatedSerializer},
    ),
    partial_update=extend_schema(
        summary="Change a channel (its kind stays)",
        request=NotificationChannelUpdateSerializer,
        responses={200: NotificationChannelSerializer},
    ),
    destroy=extend_schema(summary="Delete a channel and its deliveries", responses={204: None}),
)
@extend_schema(tags=["notifications"])
class NotificationChannelViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, BaseGenericViewSet):
    rate_group = "agents"
    permission_classes = [AdminOnly]
    serializer_class = NotificationChannelSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no caller
            return NotificationChannel.objects.none()
        return selectors.notification_channel_list(organization_id=caller_organization_id(self.request))

    def _reload(self, channel: NotificationChannel) -> NotificationChannel:
        return selectors.notification_channel_get(organization_id=channel.organization_id, channel_id=channel.pk)

    def create(self, request):
        data = validated_body(create_serializer_for(request.data), request)
        channel, secret = services.notification_channel_create(
            organization=request.user.organization, actor=request.user, ip_address=client_ip(request), **data
        )
        body = {**NotificationChannelSerializer(self._reload(channel)).data, "secret": secret}
        return Response(body, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        channel = self.get_object()
        data = validated_body(NotificationChannelUpdateSerializer, request)
        channel = services.notification_channel_update(
            channel=channel, actor=request.user, ip_address=client_ip(request), **data
        )
        return Response(NotificationChannelSerializer(self._reload(channel)).data)

    def destroy(self, request, pk=None):
        services.notification_channel_delete(
            channel=self.get_object(), actor=request.user, ip_address=client_ip(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Send a signed `test` event to this channel now",
        description="Answers 202 with the delivery, which the next sweep of `manage.py sendalerts` sends "
        "(within ALERT_SWEEP_SECONDS). At most 5 tests of a channel wait at once (409 past it).",
        request=None,
        responses={202: NotificationDeliverySerializer, 409: OpenApiResponse(description="conflict")},
    )
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        delivery = services.notification_channel_test(channel=self.get_object())
        return Response(NotificationDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="The channel's deliveries, newest first", responses={200: NotificationDeliverySerializer(many=True)}
    )
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        page = self.paginate_queryset(selectors.notification_delivery_list(channel=self.get_object()))
        return self.get_paginated_response(NotificationDeliverySerializer(page, many=True).data)
