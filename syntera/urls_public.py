"""URLconf of the public hosts (e.g. http://localhost:8000/): signup and the operator admin."""

from django.contrib import admin
from django.urls import path

from apps.dashboard import public_views
from apps.dashboard.admin import operator as operator_admin
from syntera.urls_common import urlpatterns as common

handler400 = "syntera.errors.handler400"
handler403 = "syntera.errors.handler403"
handler404 = "syntera.errors.handler404"
handler500 = "syntera.errors.handler500"

urlpatterns = [
    path("", public_views.signup, name="signup"),
    path("signup/sent/", public_views.signup_sent, name="signup-sent"),
    path("signup/confirm/<str:token>/", public_views.signup_confirm_page, name="signup-confirm"),
    path("login/", public_views.find_workspace, name="find-workspace"),
    path("admin/login/", operator_admin.login, name="operator-admin-login"),
    path("admin/password_change/", operator_admin.password_change, name="operator-admin-password-change"),
    path("admin/", admin.site.urls),
    *common,
]
