"""The Integry dialect's functions: list, get, call and predict, over typed and passthrough functions alike.

Authentication, body parsing, pagination and the apps routes are the dialect's (passthrough/dialects/integry.py);
schemas are served in the shape the Integry SDK accepts (`services.integry_schema`), arguments are still validated
against the function's own schema.
"""

from django.db.models import Q
from django.urls import re_path

from connections import hot_cache
from connections.api.views import FUNCTION_TYPES
from connections.models import Connection, Function, Integration
from functions import services
from integration_platform.errors import InvalidInput, NotFound, UpstreamTimeout
from integration_platform.validation import safe_id
from passthrough.api.passthrough_views import sync_timeout
from passthrough.connection_lookup import PASSTHROUGH_FUNCTION_ID
from passthrough.dialects import integry as dialect
from passthrough.dialects.integry import CALL_REFUSED, Caller, connected_integration_ids, integry_endpoint, is_true, page
from passthrough.models import FunctionCall
from passthrough.retries import requested_retries


def function_json(function: Function, include_meta: bool) -> dict:
    data = {"name": function.name, "description": function.description,
            "parameters": services.integry_schema(function.parameters)}
    if include_meta:
        integration = function.integration
        data["meta"] = {"app": {"id": integration.id, "name": integration.slug, "title": integration.name,
                                "icon_url": integration.logo_url}}
    return data


def wants_meta(request) -> bool:
    return "meta" in [part.strip().lower() for part in request.GET.get("include", "").split(",")]


@integry_endpoint
def functions_list(request, caller, body):
    found = services.callable_functions()
    params = request.GET
    if kind := params.get("type"):
        if kind.lower() not in FUNCTION_TYPES:
            raise InvalidInput("Invalid input.", ["type: Must be passthrough, action or query."])
        found = found.filter(type=kind.lower())
    if app := params.get("app"):
        named = Q(integration__slug__iexact=app) | Q(integration__name__iexact=app)
        found = found.filter(named) if "\x00" not in app else found.none()  # PostgreSQL refuses NUL in a query
    if is_true(params.get("connected_only")):
        found = found.filter(integration_id__in=connected_integration_ids(caller))
    rows, cursor = page(found, "name", "functions", request, body)
    meta = wants_meta(request)
    return {"functions": [function_json(function, meta) for function in rows], "_cursor": cursor}


def function_named(name) -> Function:
    try:
        return services.callable_function(name)
    except NotFound:
        raise NotFound("Function not found") from None


@integry_endpoint
def function_get(request, caller, body, name):
    # `prompt` and `_variables` ask for argument prediction, which we do not offer.
    return function_json(function_named(name), wants_meta(request))


@integry_endpoint
def functions_predict(request, caller, body):
    # Lexical ranking only: no model, nothing leaves the machine; `predict_arguments` is not offered.
    prompt = body.get("prompt")
    predicted = services.functions_predicted(prompt if isinstance(prompt, str) else "", services.callable_functions())
    meta = wants_meta(request)
    return {"functions": [function_json(function, meta) for function in predicted]}


def connection_for_call(caller: Caller, integration: Integration, account_id: str) -> Connection:
    """The end user's connection to call with: the one named by `connected_account_id`, or their only active one."""
    accounts = hot_cache.end_user_connections(caller.organization.pk, integration.pk, caller.user_id, lambda: list(
        Connection.objects.filter(organization=caller.organization, integration=integration, end_user_id=caller.user_id)
        .select_related("integration").annotate(passthrough_function_id=PASSTHROUGH_FUNCTION_ID).order_by("id")))
    if account_id:
        chosen = [c for c in accounts if c.pk == safe_id(account_id)]
        if not chosen:
            raise InvalidInput(CALL_REFUSED, [f"connected_account_id: Not a connected {integration.name} account "
                                              "of this user."])
        return chosen[0]  # an inactive one is refused by the passthrough service, saying why
    active = [c for c in accounts if c.status == Connection.STATUS_ACTIVE]
    if len(active) > 1:
        ids = ", ".join(str(c.pk) for c in active)
        raise InvalidInput(CALL_REFUSED, [f"User has connected more than one {integration.name} account; "
                                          f"pass connected_account_id (one of {ids})."])
    if not active and accounts:
        states = ", ".join(sorted({c.get_status_display().lower() for c in accounts}))
        raise InvalidInput(CALL_REFUSED, [f"User's {integration.name} account cannot be used ({states}); "
                                          "it must be connected again."])
    if not active:
        raise InvalidInput(CALL_REFUSED, [f"User has not connected their {integration.name} account."])
    return active[0]


@hot_cache.checked_at_permit
@integry_endpoint
def function_call(request, caller, body, name):
    function = function_named(name)
    # `integration_id` (the SDK's INTEGRY_INTEGRATION_ID), `_variables` and `_cursor` are ignored.
    account_id = request.GET.get("connected_account_id", "").strip()
    try:
        connection = connection_for_call(caller, function.integration, account_id)
        arguments = {key: value for key, value in body.items() if key not in ("_variables", "_cursor")}
        return services.function_call(function=function, connection=connection, arguments=arguments,
                                      dialect=FunctionCall.DIALECT_INTEGRY, extra_secrets=caller.secrets,
                                      retries=requested_retries(request))
    except UpstreamTimeout as exc:
        raise sync_timeout(exc, request) from None
    except InvalidInput as exc:
        raise InvalidInput(CALL_REFUSED, list(exc.details) or [exc.message]) from None


urlpatterns = [
    re_path(r"^functions/+list/*$", functions_list, name="integry-functions-list"),
    re_path(r"^functions/+predict/*$", functions_predict, name="integry-functions-predict"),
    re_path(rf"^functions/+{dialect.NAME}/+get/*$", function_get, name="integry-function-get"),
    re_path(rf"^functions/+{dialect.NAME}/+call/*$", function_call, name="integry-function-call"),
    *dialect.urlpatterns,
]
