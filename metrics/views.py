from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from apikeys.authentication import KeyOrTokenAuthentication
from apikeys.services import KeyPrincipal
from logfleet import clock
from logfleet.api.client import client_ip
from logfleet.api.pagination import EnvelopePagination
from logfleet.api.permissions import IsOrganizationUser, MemberWrites, is_organization_user
from logfleet.api.views import BaseAPIView, BaseGenericViewSet, caller_organization_id, validated_body, validated_query
from metrics import dashboard, selectors, services, trial
from metrics.models import MetricConfig, Series
from metrics.query_params import QueryParamsSerializer, SeriesFilterSerializer
from metrics.serializers import (
    MetricConfigFilterSerializer,
    MetricConfigSerializer,
    MetricConfigUpdateSerializer,
    MetricConfigWriteSerializer,
    RuleTestResultSerializer,
    RuleTestSerializer,
)

RULE_NAMES = (
    "A rule whose names in the Prometheus export would collide with another family's is refused (400, "
    "`details` `metrics.<index>.name` naming both): a histogram `lat` takes `lat_bucket`, `lat_sum` and "
    "`lat_count`, so a counter `lat_count` in this config, in another config of the organization or among the "
    "families its agents push collides with it, as does a gauge `x` with a counter `x`."
)


@extend_schema_view(
    list=extend_schema(
        summary="Metric configs, by name",
        parameters=[MetricConfigFilterSerializer],
    ),
    create=extend_schema(
        description=RULE_NAMES,
        request=MetricConfigWriteSerializer,
        responses={201: MetricConfigSerializer},
    ),
    update=extend_schema(
        summary="Replace a config; `version` must be the current one",
        description=RULE_NAMES,
        request=MetricConfigUpdateSerializer,
        responses={200: MetricConfigSerializer},
    ),
    partial_update=extend_schema(
        summary="Change some fields; `version` must be the current one",
        description=RULE_NAMES,
        request=MetricConfigUpdateSerializer(partial=True),
        responses={200: MetricConfigSerializer},
    ),
    destroy=extend_schema(responses={204: None}),
)
@extend_schema(tags=["metric-configs"])
class MetricConfigViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, BaseGenericViewSet):
    rate_group = "agents"
    permission_classes = [MemberWrites]
    serializer_class = MetricConfigSerializer

    def get_permissions(self):
        if self.action == "test_rules":  # trying rules changes nothing: every role may
            return [IsOrganizationUser()]
        return super().get_permissions()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no caller
            return MetricConfig.objects.none()
        filters = validated_query(MetricConfigFilterSerializer, self.request) if self.action == "list" else {}
        return selectors.metric_config_list(
            organization_id=caller_organization_id(self.request),
            enabled=filters.get("enabled"),
            log_source=filters.get("log_source"),
        )

    def create(self, request):
        data = validated_body(MetricConfigWriteSerializer, request)
        config = services.metric_config_create(
            organization=request.user.organization,
            actor=request.user,
            ip_address=client_ip(request),
            **data,
        )
        return Response(MetricConfigSerializer(config).data, status=status.HTTP_201_CREATED)

    def update(self, request, pk=None):
        return self._update(request, partial=False)

    def partial_update(self, request, pk=None):
        return self._update(request, partial=True)

    def _update(self, request, *, partial: bool):
        config = self.get_object()
        data = dict(validated_body(MetricConfigUpdateSerializer, request, partial=partial))
        if "version" not in data:
            raise ValidationError({"version": "This field is required."})
        version = data.pop("version")
        config = services.metric_config_update(
            config=config, version=version, actor=request.user, ip_address=client_ip(request), **data
        )
        return Response(MetricConfigSerializer(config).data)

    def destroy(self, request, pk=None):
        services.metric_config_delete(config=self.get_object(), actor=request.user, ip_address=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Try rules on sample lines with the agent's extraction engine",
        description=(
            "Refused upfront with 413 when the lines' bytes times the rules exceed METRIC_TEST_MAX_WORK, and with "
            "413 when the answer would exceed METRIC_TEST_MAX_RESPONSE_BYTES. A run that reaches "
            "METRIC_TEST_DEADLINE_MS stops and answers what it did (`complete: false`)."
        ),
        request=RuleTestSerializer,
        responses={200: RuleTestResultSerializer},
    )
    @action(detail=False, methods=["post"], url_path="test")
    def test_rules(self, request):
        data = validated_body(RuleTestSerializer, request)
        if "config_id" in data:
            config = get_object_or_404(self.get_queryset(), pk=data["config_id"])
            metrics = config.metrics
        else:
            metrics = data["metrics"]
        rules = trial.rules_compile(metrics)
        return Response(trial.rules_try(rules=rules, lines=data["lines"], timestamp=round(clock.unix(), 3)))


class MetricsReadView(BaseAPIView):
    rate_group = "dashboard"


class MetricNameSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField()
    series = serializers.IntegerField()
    last_sample_at = serializers.DateTimeField(allow_null=True)


class SeriesSerializer(serializers.ModelSerializer):
    agent_id = serializers.UUIDField()
    labels = serializers.DictField(child=serializers.CharField())

    class Meta:
        model = Series
        fields = ["id", "name", "type", "agent_id", "labels", "last_sample_at"]


class _Paginated(MetricsReadView):
    def paginated(self, queryset, serializer_class):
        paginator = EnvelopePagination()
        page = paginator.paginate_queryset(queryset, self.request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)


@extend_schema(tags=["metrics"], summary="Metric names, by name", responses={200: MetricNameSerializer(many=True)})
class MetricNamesView(_Paginated):
    pagination_class = EnvelopePagination

    def get(self, request):
        return self.paginated(selectors.names(organization_id=request.user.organization_id), MetricNameSerializer)


@extend_schema(
    tags=["metrics"],
    summary="Series (order: name, agent_id, id)",
    parameters=[SeriesFilterSerializer],
    responses={200: SeriesSerializer(many=True)},
)
class SeriesListView(_Paginated):
    pagination_class = EnvelopePagination

    def get(self, request):
        filters = validated_query(SeriesFilterSerializer, request)
        queryset = selectors.series_list(
            organization_id=request.user.organization_id,
            name=filters.get("name"),
            agent_id=filters.get("agent_id"),
            labels=filters.get("label", ()),
        )
        return self.paginated(queryset, SeriesSerializer)


class QuerySeriesSerializer(serializers.Serializer):
    labels = serializers.DictField(child=serializers.CharField(), help_text="the group_by keys and their values")
    points = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2),
        help_text="[ts, value]: the bucket's start (integer Unix seconds) and its value; empty buckets left out",
    )


class QueryResultSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField(allow_null=True)
    step = serializers.IntegerField()
    agg = serializers.CharField()
    series = QuerySeriesSerializer(many=True)
    warnings = serializers.ListField(
        child=serializers.CharField(),
        help_text="why the answer may be empty: an unknown metric name, filters no series matches, a group_by "
        "label no series has",
    )


@extend_schema(
    tags=["metrics"],
    summary="Time-bucketed values of one metric",
    parameters=[QueryParamsSerializer],
    responses={200: QueryResultSerializer},
)
class MetricQueryView(MetricsReadView):
    def get(self, request):
        params = validated_query(QueryParamsSerializer, request)
        query = selectors.Query(
            organization_id=request.user.organization_id,
            name=params["name"],
            start=params["start"],
            end=params["end"],
            step=params["step"],
            agg=params["agg"],
            group_by=params["group_by"],
            agent_id=params.get("agent_id"),
            labels=params.get("label", ()),
        )
        return Response(selectors.run_query(query))


class ExportPermission(BasePermission):
    """A person of the organization (any role), or an API key with metrics:read."""

    message = "This API key lacks the permission metrics:read"

    def has_permission(self, request, view):
        if is_organization_user(request.user):
            return True
        return isinstance(request.auth, KeyPrincipal) and request.auth.has("metrics:read")


@extend_schema(
    tags=["metrics"],
    summary="Every series in the Prometheus text format (a person's token, or an API key with metrics:read)",
    description=(
        "The credential is a person's access token (`Authorization: Bearer <token>`) or an API key with "
        "`metrics:read`, either as `Authorization: Bearer lf_...` (what a Prometheus scrape config's "
        "`authorization.credentials` sends) or as `X-API-Key`. A request with both an `Authorization` and an "
        "`X-API-Key` header is refused with 401. Counters and histograms are totals since the series was created; "
        "a histogram's buckets stay cumulative when its bounds change over time (a bound a sample lacks counts "
        "that sample's observations up to its nearest lower bound)."
    ),
    responses={(200, "text/plain"): str},
)
class MetricsExportView(MetricsReadView):
    authentication_classes = [KeyOrTokenAuthentication]
    permission_classes = [ExportPermission]

    def get(self, request):
        organization_id = request.user.organization_id if request.user else request.auth.organization_id
        body = "".join(selectors.export_lines(organization_id=organization_id))
        return HttpResponse(body, content_type="text/plain; version=0.0.4; charset=utf-8")


class DashboardSummarySerializer(serializers.Serializer):
    agents = serializers.DictField(child=serializers.IntegerField(), help_text="total, online, offline, error")
    configs = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="agents by config_status: in_sync, pending, failed, unknown (never reported)",
    )
    streams = serializers.DictField(child=serializers.IntegerField(), help_text="active (pending + active)")
    metrics = serializers.DictField(child=serializers.IntegerField(), help_text="series, samples_last_hour")
    api_keys = serializers.DictField(child=serializers.IntegerField(), help_text="active")


@extend_schema(tags=["dashboard"], responses={200: DashboardSummarySerializer})
class DashboardSummaryView(MetricsReadView):
    def get(self, request):
        return Response(dashboard.summary(organization_id=request.user.organization_id))
