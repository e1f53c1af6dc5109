import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from connections.models import Function, Integration
from functions import services
from functions.openapi import DocumentError

DOCUMENT_MAX_BYTES = 20 * 1024 * 1024


class OpenApiImportForm(forms.Form):
    integration = forms.ModelChoiceField(Integration.objects.all(), to_field_name="slug")
    document = forms.FileField(required=False, help_text="An OpenAPI 3.0 or 3.1 document, JSON or YAML.")
    url = forms.URLField(required=False, label="or its URL", assume_scheme="https")
    tags = forms.CharField(required=False, help_text="Keep only operations with one of these tags (comma-separated).")
    operations = forms.CharField(required=False, help_text="Keep only these operationIds (comma-separated).")
    prune = forms.BooleanField(required=False, help_text="Delete this integration's typed functions whose operation "
                                                         "is no longer in the document.")

    def clean(self):
        data = super().clean()
        if bool(data.get("document")) == bool(data.get("url")):
            raise forms.ValidationError("Upload a document or give its URL (one of the two).")
        if data.get("document") and data["document"].size > DOCUMENT_MAX_BYTES:
            raise forms.ValidationError("The document is larger than 20 MB.")
        return data


def comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@admin.register(Function)
class FunctionAdmin(admin.ModelAdmin):
    list_display = ["name", "type", "integration", "enabled", "operation_line"]
    list_filter = ["type", "enabled", "integration"]
    search_fields = ["name", "description", "integration__slug"]
    list_select_related = ["integration"]
    fields = ["integration", "name", "type", "enabled", "description", "operation_line", "parameters_json",
              "output_json"]
    readonly_fields = ["integration", "name", "type", "description", "operation_line", "parameters_json",
                       "output_json"]
    actions = ["enable", "disable"]

    @admin.display(description="Operation")
    def operation_line(self, obj):
        return f"{obj.operation['method']} {obj.operation['path']}" if obj.operation else "any (passthrough)"

    @admin.display(description="Parameters (JSON schema)")
    def parameters_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.parameters, indent=2))

    @admin.display(description="Output (JSON schema)")
    def output_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.output, indent=2)) if obj.output else "—"

    def has_add_permission(self, request):
        return False

    @admin.action(description="Enable the selected functions", permissions=["change"])
    def enable(self, request, queryset):
        self.message_user(request, f"{queryset.update(enabled=True)} function(s) enabled.")

    @admin.action(description="Disable the selected functions (not listed, not callable)", permissions=["change"])
    def disable(self, request, queryset):
        self.message_user(request, f"{queryset.update(enabled=False)} function(s) disabled.")

    def get_urls(self):
        view = self.admin_site.admin_view(self.import_openapi_view)
        return [path("import-openapi/", view, name="functions_function_import_openapi"), *super().get_urls()]

    def import_openapi_view(self, request):
        """The admin's `manage.py import_openapi`: upload a document or give its URL."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        form = OpenApiImportForm(request.POST or None, request.FILES or None,
                                 initial={"integration": request.GET.get("integration")})
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                if data["document"]:
                    text, base_uri = data["document"].read().decode("utf-8", errors="replace"), ""
                else:
                    text, base_uri = services.document_text(data["url"])
                summary = services.openapi_import(integration_slug=data["integration"].slug, text=text,
                                                  base_uri=base_uri, tags=comma_list(data["tags"]),
                                                  operations=comma_list(data["operations"]), prune=data["prune"])
            except DocumentError as exc:
                form.add_error(None, "; ".join(exc.details))
            else:
                skipped = "; ".join(f"{s['operation']}: {s['reason']}" for s in summary.skipped)
                self.message_user(request, f"{summary.integration}: {summary.created} created, {summary.updated} "
                                           f"updated, {summary.deleted} deleted."
                                           + (f" Skipped: {skipped}" if skipped else ""), messages.SUCCESS)
                changelist = reverse("admin:connections_function_changelist")
                return redirect(f"{changelist}?integration__id__exact={data['integration'].pk}")
        context = {**self.admin_site.each_context(request), "title": "Import functions from an OpenAPI document",
                   "form": form, "opts": self.model._meta}
        return TemplateResponse(request, "admin/functions/import_openapi.html", context)
