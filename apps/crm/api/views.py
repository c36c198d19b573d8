"""CRM API: contacts (with their AI memory, editable and erasable) and leads (docs/api.md)."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.api.views import actor_for
from apps.accounts.models import Role

from .. import services
from ..models import Contact, Lead
from ..selectors import contact_list, lead_list
from . import serializers as s


class CrmView(APIView):
    scope_resource = "crm"
    write_role = Role.AGENT


class ContactListView(generics.ListAPIView):  # type: ignore[type-arg]
    scope_resource = "crm"
    write_role = Role.AGENT
    serializer_class = s.ContactOutput
    ordering_fields = ["id", "name", "updated_at", "created_at"]
    filterset_fields = ["email", "phone"]

    def get_queryset(self) -> QuerySet[Contact]:
        if getattr(self, "swagger_fake_view", False):
            return Contact.objects.none()
        return contact_list(search=str(self.request.query_params.get("search", ""))[:200])

    @extend_schema(request=s.ContactInput, responses={201: s.ContactOutput})
    def post(self, request: Request) -> Response:
        data = s.ContactInput(data=request.data)
        data.is_valid(raise_exception=True)
        contact = services.contact_create(actor=actor_for(request), **data.validated_data)
        return Response(s.ContactOutput(contact).data, status=status.HTTP_201_CREATED)


class ContactDetailView(CrmView):
    @extend_schema(responses={200: s.ContactOutput})
    def get(self, request: Request, contact_id: int) -> Response:
        return Response(s.ContactOutput(get_object_or_404(Contact, pk=contact_id)).data)

    @extend_schema(request=s.ContactInput, responses={200: s.ContactOutput})
    def patch(self, request: Request, contact_id: int) -> Response:
        contact = get_object_or_404(Contact, pk=contact_id)
        data = s.ContactInput(data=request.data)
        data.is_valid(raise_exception=True)
        contact = services.contact_update(actor=actor_for(request), contact=contact, **data.validated_data)
        return Response(s.ContactOutput(contact).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, contact_id: int) -> Response:
        services.contact_delete(actor=actor_for(request), contact=get_object_or_404(Contact, pk=contact_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ContactMemoryView(CrmView):
    """The contact's memory: what the AI knows about them. PUT sets one fact (staff facts are
    never overwritten by the AI); DELETE erases one fact (`?key=&value=`), one key (`?key=`)
    or everything."""

    @extend_schema(responses={200: s.MemoryFact(many=True)})
    def get(self, request: Request, contact_id: int) -> Response:
        return Response(s.MemoryFact(get_object_or_404(Contact, pk=contact_id).memory, many=True).data)

    @extend_schema(request=s.MemoryInput, responses={200: s.MemoryFact(many=True)})
    def put(self, request: Request, contact_id: int) -> Response:
        contact = get_object_or_404(Contact, pk=contact_id)
        data = s.MemoryInput(data=request.data)
        data.is_valid(raise_exception=True)
        contact = services.contact_memory_set(actor=actor_for(request), contact=contact, **data.validated_data)
        return Response(s.MemoryFact(contact.memory, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("key", str, description="Erase only this key; without it, everything."),
            OpenApiParameter("value", str, description="With key: erase only the fact with this value."),
        ],
        responses={204: None},
    )
    def delete(self, request: Request, contact_id: int) -> Response:
        contact = get_object_or_404(Contact, pk=contact_id)
        key = request.query_params.get("key") or None
        if key is not None and key not in services.MEMORY_KEYS:
            from syntera.errors import ApplicationError

            raise ApplicationError("Unknown memory key.", code="invalid", status_code=400, fields={"key": ["Unknown."]})
        value = request.query_params.get("value") if key else None
        services.contact_memory_erase(actor=actor_for(request), contact=contact, key=key, value=value)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ContactMergeView(CrmView):
    """Fold this contact (typically an unverified one a visitor's claims made) into `into`,
    the known contact: conversations and leads move, facts join (the known contact's staff
    facts win), this contact is deleted. Audited as `crm.contact_merged`."""

    @extend_schema(request=s.MergeInput, responses={200: s.ContactOutput})
    def post(self, request: Request, contact_id: int) -> Response:
        source = get_object_or_404(Contact, pk=contact_id)
        data = s.MergeInput(data=request.data)
        data.is_valid(raise_exception=True)
        target = get_object_or_404(Contact, pk=data.validated_data["into"])
        merged = services.contact_merge(actor=actor_for(request), source=source, target=target)
        return Response(s.ContactOutput(merged).data)


class LeadListView(generics.ListAPIView):  # type: ignore[type-arg]
    scope_resource = "crm"
    serializer_class = s.LeadOutput
    ordering_fields = ["id", "created_at"]
    filterset_fields = ["status", "origin"]

    def get_queryset(self) -> QuerySet[Lead]:
        if getattr(self, "swagger_fake_view", False):
            return Lead.objects.none()
        return lead_list()
