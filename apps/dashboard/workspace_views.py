"""The workspace settings page (`/dashboard/workspace/`): its name, exports of its data, and the
danger zone where an owner deletes it (typing its address) or cancels a scheduled deletion.
The page, its export downloads and the cancel button stay reachable during the grace period
(apps/tenants/middleware.py, GRACE_PATHS); see docs/subsystems/tenancy.md."""

from __future__ import annotations

import os

from django import forms
from django.contrib import messages
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts import services
from apps.accounts.models import Role
from apps.tenants.selectors import deletion_open
from apps.workspaces import deletion, export
from syntera.errors import ApplicationError

from .forms import add_application_error
from .views import _actor, member_required


class RenameForm(forms.Form):
    name = forms.CharField(max_length=120, label="Workspace name")


class DeleteForm(forms.Form):
    confirm = forms.CharField(max_length=64, label="Type the workspace address to confirm")
    export = forms.BooleanField(
        required=False, initial=True, label="Make an export of all its data first (downloadable until the purge)"
    )


def _page(request: HttpRequest, *, rename: RenameForm | None = None, delete: DeleteForm | None = None) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    bound = (rename is not None and rename.is_bound) or (delete is not None and delete.is_bound)
    context = {
        "rename": rename or RenameForm(initial={"name": tenant.name}),
        "delete": delete or DeleteForm(),
        "pending": deletion_open(tenant),
        "exports": export.tenant_export_list_for(actor=_actor(request))[:20],
        "is_owner": request.membership.role == Role.OWNER,  # type: ignore[attr-defined]
    }
    return render(request, "dashboard/workspace.html", context, status=400 if bound else 200)


@member_required(Role.ADMIN)
def workspace(request: HttpRequest) -> HttpResponse:
    if request.method == "POST" and request.POST.get("action") == "rename":
        form = RenameForm(request.POST)
        if form.is_valid():
            try:
                services.workspace_rename(actor=_actor(request), name=form.cleaned_data["name"])
            except ApplicationError as exc:
                add_application_error(form, exc)
            else:
                messages.success(request, "Workspace renamed.")
                return redirect("dashboard-workspace")
        return _page(request, rename=form)
    return _page(request)


@require_POST
@member_required(Role.ADMIN)
def workspace_export(request: HttpRequest) -> HttpResponse:
    try:
        export.tenant_export_request(actor=_actor(request))
    except ApplicationError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, "The export is being made; it is listed below when ready.")
    return redirect("dashboard-workspace")


@require_POST
@member_required(Role.OWNER)
def workspace_delete(request: HttpRequest) -> HttpResponse:
    form = DeleteForm(request.POST)
    if form.is_valid():
        try:
            deletion.tenant_deletion_request(
                tenant=request.tenant,  # type: ignore[attr-defined]
                confirm=form.cleaned_data["confirm"],
                export=form.cleaned_data["export"],
                actor=_actor(request),
                via="dashboard",
            )
        except ApplicationError as exc:
            add_application_error(form, exc)
        else:
            messages.success(request, "The workspace is switched off and scheduled for deletion.")
            return redirect("dashboard-workspace")
    return _page(request, delete=form)


@require_POST
@member_required(Role.OWNER)
def workspace_cancel(request: HttpRequest) -> HttpResponse:
    try:
        deletion.tenant_deletion_cancel(tenant=request.tenant, actor=_actor(request), via="dashboard")  # type: ignore[attr-defined]
    except ApplicationError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, "The deletion is cancelled; the workspace works again.")
    return redirect("dashboard-workspace")


@member_required(Role.ADMIN)
def workspace_export_download(request: HttpRequest, export_id: int) -> HttpResponse:
    try:
        made = export.tenant_export_for_download(actor=_actor(request), export_id=export_id)
    except ApplicationError as exc:
        return render(request, "error.html", {"code": exc.code, "detail": exc.detail}, status=exc.status_code)
    # A streaming response, not an HttpResponse, to the type checker.
    return FileResponse(  # type: ignore[return-value]
        made.file.open("rb"),
        as_attachment=True,
        filename=os.path.basename(str(made.file.name)),
        content_type="application/zip",
    )
