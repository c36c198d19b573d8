from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from rest_framework import generics, serializers

from syntera.filters import DateTimeFilter

from ..models import AuditEvent
from ..selectors import audit_event_list


class AuditEventOutput(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label")

    class Meta:
        model = AuditEvent
        fields = ["id", "action", "actor", "target_type", "target_id", "data", "ip_address", "created_at"]


class AuditEventFilter(django_filters.FilterSet):
    action = django_filters.CharFilter(max_length=64)
    since = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["action", "since", "until"]


class AuditEventListView(generics.ListAPIView):
    """The workspace's audit trail, newest first. Owners and admins only."""

    scope_resource = "audit"
    read_role = "admin"
    serializer_class = AuditEventOutput
    filterset_class = AuditEventFilter
    ordering_fields = ["id", "created_at"]

    def get_queryset(self) -> QuerySet[AuditEvent]:
        return audit_event_list()
