from django.urls import path

from . import views

urlpatterns = [
    path("tenant/", views.TenantView.as_view(), name="api-tenant"),
    path("tenant/deletion/", views.TenantDeletionView.as_view(), name="api-tenant-deletion"),
    path("tenant/exports/", views.TenantExportListView.as_view(), name="api-tenant-exports"),
    path("tenant/exports/<int:export_id>/", views.TenantExportDetailView.as_view(), name="api-tenant-export"),
    path(
        "tenant/exports/<int:export_id>/download/",
        views.TenantExportDownloadView.as_view(),
        name="api-tenant-export-download",
    ),
]
