"""Accounts API: tokens, me, members, invitations, API keys (docs/api.md). The workspace itself
(`/api/v1/tenant/`) is apps/workspaces/api/views.py."""

from __future__ import annotations

from typing import Any

import django_filters
from django.conf import settings
from django.contrib.auth import authenticate
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken

from apps.tenants.models import Tenant
from syntera.errors import ApplicationError, check_account_rate, check_rate

from .. import selectors, services
from ..authentication import APIKeyPrincipal, jwt_matches_password, jwt_pair_for
from ..models import APIKey, Invitation, Membership, Role, User
from ..scopes import ALL_SCOPES
from . import serializers as s


def actor_for(request: Request) -> services.Actor:
    ip = request.META.get("REMOTE_ADDR")
    if isinstance(request.user, APIKeyPrincipal):
        return services.Actor.for_api_key(request.user.key, ip=ip)
    return services.Actor.for_membership(request._request.membership, ip=ip)  # type: ignore[attr-defined]


def current_tenant(request: Request) -> Tenant:
    return request._request.tenant  # type: ignore[attr-defined,no-any-return]


class TenantListView(generics.ListAPIView):  # type: ignore[type-arg]
    """A list scoped to the request's tenant; `tenant_queryset` gives the rows."""

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[Any]:
        raise NotImplementedError

    def get_queryset(self) -> QuerySet[Any]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no tenant
            return self.serializer_class.Meta.model.objects.none()  # type: ignore[union-attr]
        return self.tenant_queryset(current_tenant(self.request))


class TokenObtainView(APIView):
    """Exchange email + password for a JWT pair bound to this host's workspace."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(request=s.TokenInput, responses={200: s.TokenOutput}, auth=[])
    def post(self, request: Request) -> Response:
        check_rate(request._request, group="login", rate=settings.RATELIMIT_LOGIN)
        body = request.data
        check_account_rate(request._request, account=body.get("email") if isinstance(body, dict) else None)
        data = s.TokenInput(data=body)
        data.is_valid(raise_exception=True)
        tenant = getattr(request._request, "tenant", None)
        if tenant is None:
            raise ApplicationError("Request a token on your workspace's host.", code="no_tenant", status_code=400)
        user = authenticate(
            request._request, email=data.validated_data["email"].lower(), password=data.validated_data["password"]
        )
        membership = selectors.membership_get(user=user, tenant=tenant) if user else None
        if membership is None:
            raise ApplicationError("Wrong email or password.", code="invalid_credentials", status_code=401)
        return Response(jwt_pair_for(user=membership.user, membership=membership))


class TokenRefreshView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(request=s.RefreshInput, responses={200: s.AccessOutput}, auth=[])
    def post(self, request: Request) -> Response:
        check_rate(request._request, group="token-refresh", rate=settings.RATELIMIT_PUBLIC)
        data = s.RefreshInput(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = getattr(request._request, "tenant", None)
        try:
            refresh = RefreshToken(data.validated_data["refresh"])  # type: ignore[arg-type]
        except TokenError as exc:
            raise ApplicationError(
                "Invalid or expired refresh token.", code="token_not_valid", status_code=401
            ) from exc
        if tenant is None or refresh.get("tenant") != tenant.schema_name:
            raise ApplicationError(
                "This token was issued for another workspace.", code="permission_denied", status_code=403
            )
        user = User.objects.filter(pk=refresh.get("user_id"), is_active=True).first()
        if user is None or not jwt_matches_password(token=refresh, user=user):
            raise ApplicationError("Invalid or expired refresh token.", code="token_not_valid", status_code=401)
        return Response({"access": str(refresh.access_token)})


class MeView(APIView):
    """Who is calling: the scopes listed are exactly what the permission checks and what
    bounds anything the caller grants (the same `Actor.scopes` the services use)."""

    needs_no_scope = True  # every key may ask who it is

    @extend_schema(responses={200: s.MeOutput})
    def get(self, request: Request) -> Response:
        actor = actor_for(request)
        key = actor.key
        body: dict[str, Any] = {
            "kind": "api_key" if key else "user",
            "email": None if key or actor.user is None else actor.user.email,
            "role": None if key else actor.role,
            "scopes": [scope for scope in ALL_SCOPES if scope in actor.scopes],
            "expires_at": key.expires_at if key else None,
            "tenant": actor.tenant,
        }
        return Response(s.MeOutput(body).data)


class MemberFilter(django_filters.FilterSet):
    role = django_filters.ChoiceFilter(choices=Role.choices)
    email = django_filters.CharFilter(field_name="user__email", lookup_expr="icontains", max_length=254)

    class Meta:
        model = Membership
        fields = ["role", "email"]


class MemberListView(TenantListView):
    scope_resource = "members"
    serializer_class = s.MemberOutput
    filterset_class = MemberFilter
    ordering_fields = ["id", "created_at", "role"]

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[Membership]:
        return selectors.membership_list(tenant=tenant)


class MemberDetailView(APIView):
    scope_resource = "members"

    def _get(self, request: Request, member_id: int) -> Membership:
        return get_object_or_404(selectors.membership_list(tenant=current_tenant(request)), pk=member_id)

    @extend_schema(responses={200: s.MemberOutput})
    def get(self, request: Request, member_id: int) -> Response:
        return Response(s.MemberOutput(self._get(request, member_id)).data)

    @extend_schema(request=s.MemberUpdateInput, responses={200: s.MemberOutput})
    def patch(self, request: Request, member_id: int) -> Response:
        membership = self._get(request, member_id)
        data = s.MemberUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_set_role(
            actor=actor_for(request), membership=membership, role=data.validated_data["role"]
        )
        return Response(s.MemberOutput(membership).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, member_id: int) -> Response:
        services.membership_remove(actor=actor_for(request), membership=self._get(request, member_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationFilter(django_filters.FilterSet):
    email = django_filters.CharFilter(lookup_expr="icontains", max_length=254)
    role = django_filters.ChoiceFilter(choices=Role.choices)

    class Meta:
        model = Invitation
        fields = ["email", "role"]


class InvitationListCreateView(TenantListView):
    scope_resource = "invitations"
    serializer_class = s.InvitationOutput
    filterset_class = InvitationFilter
    ordering_fields = ["id", "created_at", "expires_at"]

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[Invitation]:
        return selectors.invitation_list(tenant=tenant)

    @extend_schema(request=s.InvitationInput, responses={201: s.InvitationOutput})
    def post(self, request: Request) -> Response:
        data = s.InvitationInput(data=request.data)
        data.is_valid(raise_exception=True)
        invitation, _token = services.invitation_create(
            actor=actor_for(request), email=data.validated_data["email"], role=data.validated_data["role"]
        )
        return Response(s.InvitationOutput(invitation).data, status=status.HTTP_201_CREATED)


class InvitationDetailView(APIView):
    scope_resource = "invitations"

    @extend_schema(responses={200: s.InvitationOutput})
    def get(self, request: Request, invitation_id: int) -> Response:
        invitation = get_object_or_404(selectors.invitation_list(tenant=current_tenant(request)), pk=invitation_id)
        return Response(s.InvitationOutput(invitation).data)

    @extend_schema(responses={200: s.InvitationOutput})
    def delete(self, request: Request, invitation_id: int) -> Response:
        invitation = get_object_or_404(selectors.invitation_list(tenant=current_tenant(request)), pk=invitation_id)
        invitation = services.invitation_revoke(actor=actor_for(request), invitation=invitation)
        return Response(s.InvitationOutput(invitation).data)


class APIKeyFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains", max_length=100)
    revoked = django_filters.BooleanFilter(field_name="revoked_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = APIKey
        fields = ["name", "revoked"]


class APIKeyListCreateView(TenantListView):
    scope_resource = "api_keys"
    serializer_class = s.APIKeyOutput
    filterset_class = APIKeyFilter
    ordering_fields = ["id", "created_at", "last_used_at"]

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[APIKey]:
        return selectors.api_key_list(tenant=tenant)

    @extend_schema(request=s.APIKeyInput, responses={201: s.APIKeyCreatedOutput})
    def post(self, request: Request) -> Response:
        data = s.APIKeyInput(data=request.data)
        data.is_valid(raise_exception=True)
        key, raw = services.api_key_create(
            actor=actor_for(request),
            name=data.validated_data["name"],
            scopes=data.validated_data.get("scopes"),
            expires_at=data.validated_data.get("expires_at"),
        )
        body = s.APIKeyOutput(key).data
        body["key"] = raw
        return Response(body, status=status.HTTP_201_CREATED)


class APIKeyDetailView(APIView):
    scope_resource = "api_keys"

    def _get(self, request: Request, key_id: int) -> APIKey:
        return get_object_or_404(selectors.api_key_list(tenant=current_tenant(request)), pk=key_id)

    @extend_schema(responses={200: s.APIKeyOutput})
    def get(self, request: Request, key_id: int) -> Response:
        return Response(s.APIKeyOutput(self._get(request, key_id)).data)

    @extend_schema(responses={200: s.APIKeyOutput})
    def delete(self, request: Request, key_id: int) -> Response:
        key = services.api_key_revoke(actor=actor_for(request), key=self._get(request, key_id))
        return Response(s.APIKeyOutput(key).data)
