"""Routes every host serves: operations endpoints, the API and its documentation."""

from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from syntera import csp, observability
from syntera.errors import api_not_found

urlpatterns = [
    path("healthz", observability.healthz, name="healthz"),
    path("readyz", observability.readyz, name="readyz"),
    path("metrics", observability.metrics_view, name="metrics"),
    path("csp-report/", csp.csp_report, name="csp-report"),
    path("api/v1/", include("syntera.urls_api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file (?script): no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    # One documentation page: ReDoc's bundle inserts inline styles and loads its logo from a
    # CDN, which the Content-Security-Policy refuses; its old address leads to Swagger UI.
    path("api/redoc/", RedirectView.as_view(pattern_name="api-docs", permanent=True), name="api-redoc"),
    # Unknown API paths answer in the error shape even with DEBUG on (no HTML 404 page).
    re_path(r"^api/", api_not_found),
]
