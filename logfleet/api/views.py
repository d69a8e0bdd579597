"""Base views: every API view of LogFleet derives from these.

They add the rate-limit groups of API.md section 1. The limit is applied right after
authentication (so it keys on the user, the API key or the agent), before permissions,
and every response of a limited group carries the X-RateLimit-* headers.
"""

from rest_framework import serializers, viewsets
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.views import APIView

from logfleet.api import ratelimit
from logfleet.api.exceptions import flatten_errors
from logfleet.api.fields import json_type_errors
from logfleet.api.pagination import ONCE_MESSAGE


class RateLimitMixin:
    #: one of logfleet.api.ratelimit.GROUPS, or None for an unlimited view
    rate_group: str | None = None
    #: key anonymous callers by client IP (the public authentication endpoints)
    rate_limit_anonymous: bool = False

    def get_rate_key(self, request) -> str | None:
        """Who the counter belongs to; None leaves the request uncounted (it will get a 401)."""
        user = request.user
        if user is not None and getattr(user, "is_authenticated", False):
            return f"user:{user.pk}"
        if request.auth is not None and hasattr(request.auth, "rate_key"):
            return request.auth.rate_key
        if self.rate_limit_anonymous:
            return ratelimit.ip_key(request)
        return None

    def perform_authentication(self, request):
        super().perform_authentication(request)
        if self.rate_group is None:
            return
        try:
            key = self.get_rate_key(request)
        except APIException:
            # A request that cannot name its bucket (a body that does not parse) still counts, on
            # the caller's own one, before it is answered.
            key = RateLimitMixin.get_rate_key(self, request)
            if key is not None:
                ratelimit.enforce(request, group=self.rate_group, key=key)
            raise
        if key is not None:
            ratelimit.enforce(request, group=self.rate_group, key=key)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        usage = getattr(request, "rate_usage", None)
        if usage is not None:
            for header, value in usage.headers().items():
                response[header] = value
        return response


class BaseAPIView(RateLimitMixin, APIView):
    pass


def validated_body(serializer_class, request, **kwargs) -> dict:
    """The request body checked by a serializer (validate and shape only); invalid → 400.

    JSON types are checked first (fields.json_type_errors): `{"name": 0}` is a 400, not the name "0"."""
    serializer = serializer_class(data=request.data, **kwargs)
    valid = serializer.is_valid()
    wrong_types = json_type_errors(serializer, request.data)
    if wrong_types or not valid:
        raise ValidationError({**flatten_errors(serializer.errors if not valid else {}), **wrong_types})
    return serializer.validated_data


def validated_query(serializer_class, request) -> dict:
    """The query string checked by a serializer: a bad value of a documented parameter is a 400.

    A parameter given blank (`status=`, `name=`) is that value, checked like any other, and not "absent"
    as DRF reads an HTML form: a filter that is there is valid or refused, as the schema says. Only list
    fields may be repeated (`label=a:1&label=b:2`); another parameter given twice is a 400."""
    params = request.query_params
    data, repeated = {}, {}
    for name, field in serializer_class().fields.items():
        values = params.getlist(name)
        if not values:
            continue
        if isinstance(field, serializers.ListField):
            data[name] = values
        elif len(values) > 1:
            repeated[name] = ONCE_MESSAGE
        else:
            data[name] = values[0]
    if repeated:
        raise ValidationError(repeated)
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def caller_organization_id(request):
    """The organization of whoever is calling: the user's, or the API key's."""
    user = request.user
    if user is not None and getattr(user, "organization_id", None):
        return user.organization_id
    return getattr(request.auth, "organization_id", None)


class BaseGenericViewSet(RateLimitMixin, viewsets.GenericViewSet):
    """Resource viewsets: `queryset` is scoped to the caller's organization here, once.

    Subclasses set `queryset` (with its documented order, ties broken by id) and may narrow it
    further in `get_queryset()` through `super().get_queryset()`.
    """

    organization_field = "organization_id"

    def get_queryset(self):
        queryset = super().get_queryset()
        if getattr(self, "swagger_fake_view", False):  # schema generation has no caller
            return queryset.none()
        return queryset.filter(**{self.organization_field: caller_organization_id(self.request)})
