"""URLconf of tenant hosts (e.g. http://acme.localhost:8000/): dashboard, tenant admin, API."""

from django.urls import include, path
from django.views.generic import RedirectView

from apps.dashboard.admin.site import tenant_admin_site
from syntera.urls_common import urlpatterns as common

handler400 = "syntera.errors.handler400"
handler403 = "syntera.errors.handler403"
handler404 = "syntera.errors.handler404"
handler500 = "syntera.errors.handler500"

urlpatterns = [
    path("", RedirectView.as_view(url="/dashboard/", permanent=False)),
    path("", include("apps.dashboard.urls")),
    path("admin/", tenant_admin_site.urls),
    *common,
]
