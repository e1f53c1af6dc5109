import json
import re

from django import forms
from django.contrib import admin
from django.db import models
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.html import format_html_join

from connections import connect, lifecycle, ratelimit
from connections.catalog import validate_entry
from connections.models import (ApiKey, ConnectSession, Connection, Function, Integration, Organization, WebhookAttempt,
                                WebhookDelivery)
from connections.connect_views import connect_url
from connections.webhooks import webhook_replay, webhook_secret_rotate, webhook_url_problems
from connections.services import AUTH_CONFIG_SECRET_KEYS


class OrganizationForm(forms.ModelForm):
    class Meta:
        model = Organization
        fields = ["name", "webhook_url", "allowed_redirect_origins"]

    def clean_allowed_redirect_origins(self):
        origins = self.cleaned_data.get("allowed_redirect_origins") or []
        if not isinstance(origins, list) or not all(isinstance(o, str) and connect.is_origin(o) for o in origins):
            raise forms.ValidationError('A list of origins such as ["https://app.example.com"] (scheme, host, port; no path).')
        return [o.rstrip("/").lower() for o in origins]

    def clean_webhook_url(self):
        """The guard that delivers webhooks, applied when the URL is set (not six failed attempts later)."""
        url = self.cleaned_data["webhook_url"]
        problems = webhook_url_problems(url) if url else []
        if problems:
            raise forms.ValidationError([problem.removeprefix("url: ") for problem in problems])
        return url


class ShowsSecretOnce:
    """A secret made on add (API key, account token) is shown once on the page that answers the add, never put in
    a message: the cookie message storage signs messages but does not encrypt them."""

    secret_label = ""

    def show_secret_once(self, request, secret):
        request.secret_shown_once = secret

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(request, "secret_shown_once", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        return self.secret_page(request, obj, secret, title="added", intro="was added successfully.")

    def selected_one(self, request, queryset, why: str):
        """The one object an action that shows a secret acts on (None, with a message, when the selection is not one)."""
        if queryset.count() != 1:
            self.message_user(request, f"Select one {self.model._meta.verbose_name}: {why}", level="warning")
            return None
        return queryset.get()

    def secret_page(self, request, obj, secret, *, title: str, intro: str, label: str = ""):
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request), "opts": opts, "title": f"{opts.verbose_name.capitalize()} {title}",
            "intro": f"The {opts.verbose_name} {obj} {intro}", "label": label or self.secret_label,
            "secret": secret, "object": obj,
            "change_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]),
        }
        response = TemplateResponse(request, "admin/secret_shown_once.html", context)
        add_never_cache_headers(response)
        return response


@admin.register(Organization)
class OrganizationAdmin(ShowsSecretOnce, admin.ModelAdmin):
    form = OrganizationForm
    list_display = ["name", "webhook_url", "created_at"]
    search_fields = ["name"]
    actions = ["rotate_webhook_secret"]
    secret_label = "Webhook signing secret"

    @admin.action(description="Rotate the webhook secret (the old one keeps signing for 24 h)", permissions=["change"])
    def rotate_webhook_secret(self, request, queryset):
        organization = self.selected_one(request, queryset, "its new secret is shown once.")
        if organization is None:
            return None
        return self.secret_page(request, organization, webhook_secret_rotate(organization), title="webhook secret rotated",
                                intro="signs webhooks with this new secret; the previous one keeps signing beside it for 24 h.")


class ReadOnlyInline(admin.TabularInline):
    """Rows shown beside their parent, never added, edited or deleted there (set `fields`)."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False


class WebhookAttemptInline(ReadOnlyInline):
    model = WebhookAttempt
    fields = ["number", "response_status", "error", "duration_ms", "created_at"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "organization", "event", "status", "attempts", "last_error", "next_attempt_at",
                    "delivered_at"]
    list_filter = ["status", "event", "organization"]
    readonly_fields = ["organization", "event", "url", "status", "attempts", "last_error", "next_attempt_at",
                       "created_at", "delivered_at", "payload_json"]
    exclude = ["payload"]
    inlines = [WebhookAttemptInline]
    actions = ["replay"]

    def get_queryset(self, request):
        latest = WebhookAttempt.objects.filter(delivery=models.OuterRef("pk")).order_by("-number")
        return super().get_queryset(request).annotate(
            latest_error=models.Subquery(latest.values("error")[:1]))

    @admin.display(description="Last error")
    def last_error(self, obj):
        return getattr(obj, "latest_error", None) or "-"

    @admin.display(description="Payload")
    def payload_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2))

    @admin.action(description="Replay selected deliveries", permissions=["replay"])
    def replay(self, request, queryset):
        for delivery in queryset:
            webhook_replay(delivery)
        self.message_user(request, f"Queued {queryset.count()} delivery(ies) again.")

    def has_replay_permission(self, request):
        return request.user.has_perm("connections.change_webhookdelivery")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(ShowsSecretOnce, admin.ModelAdmin):
    list_display = ["key_id", "organization", "name", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["organization", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["key_id", "name", "organization__name"]
    readonly_fields = ["key_id", "created_at", "last_used_at"]
    actions = ["revoke"]
    secret_label = "API key"

    def get_readonly_fields(self, request, obj=None):
        # Moving a key to another organization would hand it that tenant's connections; a revoked key stays revoked
        # (revoke with the action; make a new key rather than reviving one).
        return self.readonly_fields if obj is None else ["organization", "revoked_at", *self.readonly_fields]

    def get_fields(self, request, obj=None):
        return ["organization", "name"] if obj is None else ["organization", "name", "key_id", "created_at", "last_used_at", "revoked_at"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        api_key, full_key = ApiKey.generate(obj.organization, name=obj.name)
        # The admin's confirmation message and history entry name `obj`: make it the saved key.
        obj.pk, obj.key_id, obj.created_at = api_key.pk, api_key.key_id, api_key.created_at
        self.show_secret_once(request, full_key)

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        count = queryset.revoke()
        self.message_user(request, f"Revoked {count} key(s).")


CATALOG_FIELDS = ["slug", "name", "description", "base_url", "rate_limits", "allowed_override_hosts", "categories",
                  "docs_url", "logo_url", "enabled", "sync_models"]


RATE_LIMIT_LINE = re.compile(r"(\d+)\s*(?:requests?\s+)?per\s+(\d+(?:\.\d+)?)\s*s(?:ec(?:onds?)?)?(?:\s+per\s+(integration|connection))?",
                             re.IGNORECASE)


class RateLimitsField(forms.Field):
    """Rate-limit windows as lines ("100 per 10 s", "50 per 60 s per connection"); a JSON list is accepted too.
    The catalog validator then judges the windows, as for `load_catalog`."""

    widget = forms.Textarea(attrs={"rows": 3, "cols": 50})

    def prepare_value(self, value):
        if not isinstance(value, list):
            return value  # the operator's text, re-shown after an error
        return "\n".join(
            f"{w['requests']} per {w['per_seconds']:g} s" + (f" per {w['per']}" if w.get("per") == "connection" else "")
            if isinstance(w, dict) and {"requests", "per_seconds"} <= set(w) and isinstance(w["per_seconds"], (int, float))
            else json.dumps(w) for w in value)

    def to_python(self, value):
        text = (value or "").strip()
        if text.startswith(("[", "{")):
            try:
                return json.loads(text)
            except ValueError:
                raise forms.ValidationError("rate_limits: Not valid JSON.") from None
        windows = []
        for i, line in enumerate(line.strip() for line in text.splitlines() if line.strip()):
            match = RATE_LIMIT_LINE.fullmatch(line)
            if match is None:
                raise forms.ValidationError(f'rate_limits[{i}]: Write "N per S s", optionally followed by "per connection".')
            per_seconds = float(match[2])
            windows.append({"requests": int(match[1]), "per_seconds": int(per_seconds) if per_seconds.is_integer() else per_seconds,
                            **({"per": match[3].lower()} if match[3] else {})})
        return windows


class PrettyJSONField(forms.JSONField):
    """A JSON box shown indented, so a list of objects reads as a form."""

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False)


class IntegrationForm(forms.ModelForm):
    oauth_client_secret = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False),
        help_text="OAuth2 only. Write-only: leave empty to keep the stored secret.",
    )
    rate_limits = RateLimitsField(
        required=False, help_text='One window per line: "100 per 10 s" (per integration) or "50 per 60 s per connection".')
    auth_config = PrettyJSONField(required=False, widget=forms.Textarea(attrs={"rows": 5, "cols": 80}))
    # The OAuth app settings (stored in auth_config): a change here wins over the same key edited in auth_config.
    oauth_client_id = forms.CharField(required=False, label="OAuth client id", help_text="OAuth2: your app's client id at the provider.")
    oauth_scopes = forms.CharField(required=False, label="OAuth scopes", help_text="OAuth2: scopes, separated by spaces.")
    oauth_authorize_params = forms.JSONField(required=False, label="Extra authorize params",
                                             help_text='OAuth2: added to the authorize URL, e.g. {"access_type": "offline"}.')
    oauth_token_auth = forms.ChoiceField(required=False, label="Token auth style", choices=[
        ("body", "Client secret in the form body"), ("basic", "HTTP Basic")])
    oauth_pkce = forms.BooleanField(required=False, initial=True, label="PKCE (S256)",
                                    help_text="Turn off only for a provider that refuses PKCE.")
    OAUTH_APP_FIELDS = {"oauth_client_id": "client_id", "oauth_scopes": "scopes", "oauth_authorize_params": "authorize_params",
                        "oauth_token_auth": "token_auth", "oauth_pkce": "pkce"}

    # Catalog fields edited as rows rather than a field, each by the app that owns the field (syncing: sync_models):
    # {field name: a formset class taking (data, value=the stored value), with value() and show_problem(line)}.
    entry_formsets = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.entry_formsets:
            self.fields.pop(name, None)
        self.formsets = {name: formset(self.data if self.is_bound else None, value=getattr(self.instance, name))
                         for name, formset in self.entry_formsets.items()}
        config = self.instance.auth_config or {}
        self.initial.update(oauth_client_id=config.get("client_id", ""), oauth_scopes=" ".join(config.get("scopes", [])),
                            oauth_authorize_params=config.get("authorize_params") or {},
                            oauth_token_auth=config.get("token_auth", "body"), oauth_pkce=config.get("pkce", True))

    def _oauth_app_settings(self, data, config: dict) -> dict:
        values = {"oauth_scopes": (data.get("oauth_scopes") or "").split(),
                  "oauth_authorize_params": data.get("oauth_authorize_params") or {},
                  "oauth_token_auth": data.get("oauth_token_auth") or "body"}
        changed = {key: values.get(name, data.get(name)) for name, key in self.OAUTH_APP_FIELDS.items() if name in self.changed_data}
        return {**config, **changed}

    class Meta:
        model = Integration
        fields = "__all__"

    def clean(self):
        data = super().clean()
        # An emptied JSON box means "none", not SQL NULL: the columns are NOT NULL.
        for name in ("auth_config", "categories", "rate_limits", "allowed_override_hosts", "sync_models"):
            if name in data and data[name] is None:
                data[name] = Integration._meta.get_field(name).get_default()
        config = data.get("auth_config", {})
        if not isinstance(config, dict):
            raise forms.ValidationError("auth_config: Must be a JSON object.")
        if data.get("auth_scheme") == "oauth2":
            config = data["auth_config"] = self._oauth_app_settings(data, config)
        # A secret in auth_config would be stored in clear and shown on this page.
        for key in AUTH_CONFIG_SECRET_KEYS:
            if key in config:
                self.add_error("auth_config", f"auth_config.{key}: Use the write-only OAuth client secret field.")
        # `load_catalog`'s validator, on the entry this form describes: the same rules and the same messages.
        self.formset_values = {name: formset.value() for name, formset in self.formsets.items() if formset.is_valid()}
        entry = {**{name: data[name] for name in CATALOG_FIELDS if name in data}, **self.formset_values}
        for error in validate_entry({**entry, "auth": {**config, "scheme": data.get("auth_scheme")}}):
            field = self.field_of(error)
            if field in self.formsets and self.formsets[field].show_problem(error):
                continue
            if field not in self._errors:  # a field Django refused already is missing from `data`, not absent
                self.add_error(None if field in self.formsets else field, error)
        for name, formset in self.formsets.items():
            if not formset.is_valid() or any(form.errors for form in formset.forms):
                self.add_error(None, f"{name}: Correct the rows marked below.")
        return data

    @cached_property
    def changed_data(self):
        """With each edited formset's field, for the admin's history."""
        return [*super().changed_data, *(name for name, formset in self.formsets.items() if formset.has_changed())]

    def field_of(self, error: str) -> str | None:
        """The form field a `field[i].key: message` line of the validator is about (None: the whole form)."""
        name = error.split(":", 1)[0].split(".", 1)[0].split("[", 1)[0]
        name = "auth_config" if name == "auth" else name
        return name if name in self.fields or name in self.formsets else None

    def save(self, commit=True):
        if self.cleaned_data.get("oauth_client_secret"):
            self.instance.set_oauth_client_secret(self.cleaned_data["oauth_client_secret"])
        for name, value in self.formset_values.items():
            setattr(self.instance, name, value)
        return super().save(commit)


class FunctionInline(ReadOnlyInline):
    model = Function
    fields = ["name", "type", "description"]


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin):
    form = IntegrationForm
    list_display = ["slug", "name", "auth_scheme", "base_url", "enabled", "connection_count"]
    list_filter = ["enabled", "auth_scheme"]
    search_fields = ["slug", "name", "base_url"]
    readonly_fields = ["rate_limit_usage", "openapi_import_link"]
    inlines = [FunctionInline]

    def get_exclude(self, request, obj=None):
        return [*(super().get_exclude(request, obj) or []), *IntegrationForm.entry_formsets]

    @admin.display(description="Connections")
    def connection_count(self, obj):
        return obj.connections.count()

    @admin.display(description="Rate limits and current usage")
    def rate_limit_usage(self, obj):
        if obj.pk is None:
            return "—"
        return format_html_join("", "<div>{}</div>", ((line,) for line in ratelimit.limiter().usage(obj)))

    @admin.display(description="Typed functions")
    def openapi_import_link(self, obj):
        if obj.pk is None:
            return "—"
        url = reverse("admin:functions_function_import_openapi") + f"?integration={obj.slug}"
        return format_html('<a href="{}">Import functions from an OpenAPI document</a>', url)


class WriteOnlyTextarea(forms.Textarea):
    """Never renders a value, not even the operator's own input re-shown after a validation error."""

    def format_value(self, value):
        return None


class ConnectionForm(forms.ModelForm):
    new_credentials = forms.JSONField(
        required=False, widget=WriteOnlyTextarea(attrs={"rows": 3}),
        help_text='Write-only JSON, e.g. {"token": "..."}. Stored encrypted and never shown. Leave empty to keep the current credentials.',
    )

    class Meta:
        model = Connection
        fields = ["organization", "integration", "end_user_id", "label", "end_user_email", "end_user_organization_name",
                  "status", "status_detail"]

    def clean(self):
        data = super().clean()
        credentials = data.get("new_credentials")
        if self.instance.pk is None and not credentials:
            self.add_error("new_credentials", "Credentials are required for a new connection.")
        elif data.get("integration") and (credentials or "integration" in self.changed_data):
            # Moving a connection to another integration must not keep credentials its scheme cannot use.
            for error in data["integration"].scheme.validate_credentials(credentials or self.instance.credentials):
                self.add_error("new_credentials", error)
        return data

    def save(self, commit=True):
        if self.cleaned_data.get("new_credentials"):
            self.instance.credentials = self.cleaned_data["new_credentials"]
        return super().save(commit)


@admin.register(Connection)
class ConnectionAdmin(ShowsSecretOnce, admin.ModelAdmin):
    form = ConnectionForm
    list_display = ["id", "integration", "end_user_id", "organization", "status", "created_at", "last_used_at"]
    list_filter = ["status", "integration", "organization"]
    search_fields = ["end_user_id", "label", "end_user_email"]
    readonly_fields = ["created_at", "updated_at", "last_used_at"]
    list_select_related = ["integration", "organization"]
    actions = ["reconnect_link"]  # syncing/admin.py adds its sync actions
    secret_label = "Account token for this connection"

    @admin.action(description="Copy a connect link to re-link the selected connection", permissions=["change"])
    def reconnect_link(self, request, queryset):
        connection = self.selected_one(request, queryset.select_related("organization"), "its connect link is shown once.")
        if connection is None:
            return None
        _, token = connect.session_create(connection.organization, end_user_id=connection.end_user_id,
                                          connection_id=connection.pk)
        return self.secret_page(request, connection, connect_url(request, token), title="connect link",
                                intro=f"can be re-linked by its end user at this link (valid "
                                      f"{connect.SESSION_MINUTES_DEFAULT} min).", label="Connect link")

    def save_model(self, request, obj, form, change):
        token = None if change else obj.issue_account_token()
        super().save_model(request, obj, form, change)
        if token:
            lifecycle.announce(lifecycle.LINKED, obj, account_token=token)  # as connection_create
            self.show_secret_once(request, token)


class ConnectSessionForm(forms.ModelForm):
    """A connect link made by hand (an operator sends it to a customer); the link is shown once after saving."""

    expires_in_minutes = forms.IntegerField(min_value=1, max_value=connect.SESSION_MINUTES_MAX,
                                            initial=connect.SESSION_MINUTES_MAX, help_text="Lifetime of the link.")
    integrations = forms.ModelMultipleChoiceField(Integration.objects.filter(enabled=True), required=False,
                                                  help_text="Offered on the page; none selected: every enabled one.")

    class Meta:
        model = ConnectSession
        fields = ["organization", "end_user_id", "end_user_email", "end_user_organization_name", "redirect_url"]

    def clean(self):
        data = super().clean()
        if data.get("organization"):
            for problem in connect.redirect_url_problems(data["organization"], data.get("redirect_url", "")):
                self.add_error("redirect_url", problem.split(": ", 1)[1])
        return data


@admin.register(ConnectSession)
class ConnectSessionAdmin(ShowsSecretOnce, admin.ModelAdmin):
    """Connect sessions: who, what was offered, open/used/expired, and the connection it made. Tokens never shown
    (the link of a session made here is shown once, on the page that answers the add)."""

    secret_label = "Connect link"

    list_display = ["created_at", "organization", "end_user_id", "offered", "state", "expires_at", "connection"]
    list_filter = ["organization", ("completed_at", admin.EmptyFieldListFilter)]
    search_fields = ["end_user_id", "end_user_email", "end_user_organization_name"]
    list_select_related = ["organization", "connection__integration"]
    readonly_fields = ["organization", "end_user_id", "end_user_email", "end_user_organization_name", "offered",
                       "redirect_url", "state", "connection", "created_at", "expires_at", "completed_at"]

    @admin.display(description="Offered integrations")
    def offered(self, obj):
        return ", ".join(i.slug for i in obj.integrations.all())

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("integrations")

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ConnectSessionForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["organization", "end_user_id", "end_user_email", "end_user_organization_name", "integrations",
                    "redirect_url", "expires_in_minutes"]
        return self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        session, token = connect.session_create(
            data["organization"], end_user_id=data["end_user_id"], end_user_email=data["end_user_email"],
            end_user_organization_name=data["end_user_organization_name"],
            integrations=[i.slug for i in data["integrations"]], redirect_url=data["redirect_url"],
            expires_in_minutes=data["expires_in_minutes"])
        obj.pk, obj.created_at = session.pk, session.created_at
        self.show_secret_once(request, connect_url(request, token))

    def save_related(self, request, form, formsets, change):
        pass  # session_create stored the offered integrations
