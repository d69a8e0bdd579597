from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from accounts import selectors, services
from accounts.models import AuditEvent, User
from accounts.serializers import (
    AuditEventFilterSerializer,
    AuditEventSerializer,
    ChangePasswordSerializer,
    ForgotPasswordSerializer,
    LoginSerializer,
    MemberInviteSerializer,
    MemberSerializer,
    MemberUpdateSerializer,
    MeSerializer,
    MessageSerializer,
    OrganizationSerializer,
    ProfileUpdateSerializer,
    RefreshSerializer,
    RegisterSerializer,
    ResetPasswordSerializer,
    SessionSerializer,
    TokenPairSerializer,
)
from logfleet.api import ratelimit
from logfleet.api.client import client_ip
from logfleet.api.permissions import AdminOnly, AdminWrites, IsOrganizationUser
from logfleet.api.views import (
    BaseAPIView,
    BaseGenericViewSet,
    caller_organization_id,
    validated_body,
    validated_query,
)


def _session_body(user, pair) -> dict:
    return {
        **pair.as_dict(),
        "user": {"id": str(user.pk), "email": user.email, "name": user.name, "role": user.role},
        "organization": {
            "id": str(user.organization.pk),
            "name": user.organization.name,
            "slug": user.organization.slug,
        },
    }


class PublicAuthView(BaseAPIView):
    """The anonymous authentication endpoints: no token needed, limited per client IP.

    Login, forgot-password and reset-password are also limited per target account
    (logfleet.api.ratelimit.enforce_account), counted once the body is valid, before the
    account is looked up: the answers are the same whether or not the account exists.
    """

    authentication_classes = []
    permission_classes = [AllowAny]
    rate_group = "auth"
    rate_limit_anonymous = True


@extend_schema(tags=["auth"], request=RegisterSerializer, responses={201: SessionSerializer})
class RegisterView(PublicAuthView):
    def post(self, request):
        data = validated_body(RegisterSerializer, request)
        user, pair = services.organization_register(**data, ip_address=client_ip(request))
        return Response(_session_body(user, pair), status=status.HTTP_201_CREATED)


@extend_schema(
    tags=["auth"],
    request=LoginSerializer,
    responses={200: SessionSerializer, 401: OpenApiResponse(description="Wrong email or password")},
)
class LoginView(PublicAuthView):
    def post(self, request):
        data = validated_body(LoginSerializer, request)
        ratelimit.enforce_account(request, data["email"])
        user, pair = services.user_login(email=data["email"], password=data["password"], ip_address=client_ip(request))
        return Response(_session_body(user, pair))


@extend_schema(tags=["auth"], request=RefreshSerializer, responses={200: TokenPairSerializer})
class RefreshView(PublicAuthView):
    def post(self, request):
        data = validated_body(RefreshSerializer, request)
        return Response(services.session_refresh(refresh_token=data["refresh_token"]).as_dict())


@extend_schema(tags=["auth"], request=ForgotPasswordSerializer, responses={202: MessageSerializer})
class ForgotPasswordView(PublicAuthView):
    def post(self, request):
        data = validated_body(ForgotPasswordSerializer, request)
        ratelimit.enforce_account(request, data["email"])
        services.password_reset_request(email=data["email"], ip_address=client_ip(request))
        return Response(
            {"message": "If an account exists for this email, a reset link has been sent."},
            status=status.HTTP_202_ACCEPTED,
        )


@extend_schema(tags=["auth"], request=ResetPasswordSerializer, responses={200: MessageSerializer})
class ResetPasswordView(PublicAuthView):
    def post(self, request):
        data = validated_body(ResetPasswordSerializer, request)
        ratelimit.enforce_account(request, services.password_token_email(token=data["token"]))
        services.password_reset_confirm(
            token=data["token"], new_password=data["new_password"], ip_address=client_ip(request)
        )
        return Response({"message": "Your password has been set. Log in with it."})


@extend_schema(tags=["auth"], request=None, responses={204: None})
class LogoutView(BaseAPIView):
    rate_group = "auth"

    def post(self, request):
        services.user_logout(user=request.user, session=request.auth, ip_address=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["auth"], request=ChangePasswordSerializer, responses={200: TokenPairSerializer})
class ChangePasswordView(BaseAPIView):
    rate_group = "auth"

    def post(self, request):
        data = validated_body(ChangePasswordSerializer, request)
        pair = services.password_change(user=request.user, ip_address=client_ip(request), **data)
        return Response(pair.as_dict())


@extend_schema_view(
    get=extend_schema(tags=["auth"], responses={200: MeSerializer}),
    patch=extend_schema(tags=["auth"], request=ProfileUpdateSerializer, responses={200: MeSerializer}),
)
class MeView(BaseAPIView):
    rate_group = "dashboard"
    permission_classes = [IsOrganizationUser]

    def get(self, request):
        return Response(self._body(request.user))

    def patch(self, request):
        data = validated_body(ProfileUpdateSerializer, request)
        user = request.user
        if "name" in data:  # `{}` changes nothing
            user = services.user_update_profile(user=user, name=data["name"])
        return Response(self._body(user))

    @staticmethod
    def _body(user) -> dict:
        return MeSerializer({"user": user, "organization": user.organization}).data


class OrganizationUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(min_length=1, max_length=150, required=False)


@extend_schema_view(
    get=extend_schema(tags=["organization"], responses={200: OrganizationSerializer}),
    patch=extend_schema(
        tags=["organization"], request=OrganizationUpdateSerializer, responses={200: OrganizationSerializer}
    ),
)
class OrganizationView(BaseAPIView):
    rate_group = "dashboard"
    permission_classes = [AdminWrites]

    def get(self, request):
        return Response(OrganizationSerializer(request.user.organization).data)

    def patch(self, request):
        data = validated_body(OrganizationUpdateSerializer, request)
        organization = request.user.organization
        if "name" in data:  # `{}` changes nothing (and records nothing)
            organization = services.organization_update(
                organization=organization, actor=request.user, name=data["name"], ip_address=client_ip(request)
            )
        return Response(OrganizationSerializer(organization).data)


@extend_schema_view(
    list=extend_schema(tags=["organization"], summary="Members, oldest first"),
    retrieve=extend_schema(tags=["organization"]),
    create=extend_schema(tags=["organization"], request=MemberInviteSerializer, responses={201: MemberSerializer}),
    partial_update=extend_schema(
        tags=["organization"], request=MemberUpdateSerializer, responses={200: MemberSerializer}
    ),
    destroy=extend_schema(tags=["organization"], responses={204: None}),
)
class MemberViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, BaseGenericViewSet):
    rate_group = "dashboard"
    permission_classes = [AdminWrites]
    serializer_class = MemberSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no caller
            return User.objects.none()
        return selectors.member_list(organization_id=caller_organization_id(self.request))

    def create(self, request):
        data = validated_body(MemberInviteSerializer, request)
        member = services.member_invite(
            organization=request.user.organization, actor=request.user, ip_address=client_ip(request), **data
        )
        return Response(MemberSerializer(member).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        member = self.get_object()
        data = validated_body(MemberUpdateSerializer, request)
        member = services.member_update(
            member=member,
            actor=request.user,
            role=data.get("role"),
            status=data.get("status"),
            ip_address=client_ip(request),
        )
        return Response(MemberSerializer(member).data)

    def destroy(self, request, pk=None):
        services.member_delete(member=self.get_object(), actor=request.user, ip_address=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(
        tags=["audit"],
        summary="Audit events, newest first",
        parameters=[AuditEventFilterSerializer],
    )
)
class AuditEventViewSet(mixins.ListModelMixin, BaseGenericViewSet):
    rate_group = "dashboard"
    permission_classes = [AdminOnly]
    serializer_class = AuditEventSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no caller
            return AuditEvent.objects.none()
        filters = validated_query(AuditEventFilterSerializer, self.request)
        return selectors.audit_event_list(organization_id=caller_organization_id(self.request), **filters)
