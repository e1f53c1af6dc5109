"""The hosted connect page (/connect/...): server-rendered, works without JavaScript. Logic in connect.py."""

import functools
import json

from django.conf import settings
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_GET, require_http_methods

from connections import connect
from connections.connect import KEY_FORM_FIELDS, CredentialsRefused, FlowFailed, PageError
from integration_platform.errors import PlatformError

BROWSER_COOKIE = "connect_browser"


class SeeOther(HttpResponseRedirect):
    status_code = 303


def public_base_url(request) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") or f"{request.scheme}://{request.get_host()}"


def connect_url(request, token: str) -> str:
    return public_base_url(request) + reverse("connect-page", args=[token])


def _callback_url(request) -> str:
    return public_base_url(request) + reverse("connect-oauth-callback")


def _secure(response, organization=None, integrations=()):
    """Only the developer's allowed origins may embed the page; nothing loads from another host (catalog logos
    excepted: the operator chose them)."""
    origins = " ".join(connect.allowed_origins(organization)) if organization else ""
    logos = " ".join(sorted({connect.origin_of(i.logo_url) for i in integrations if i.logo_url}))
    ancestors = origins or "'none'"
    policy = ["default-src 'none'", "style-src 'self'", "script-src 'self'", f"img-src 'self' {logos}".strip(),
              # A form's redirect (the end of the flow) must be allowed too.
              f"form-action 'self' {origins}".strip(), "base-uri 'none'", f"frame-ancestors {ancestors}"]
    response["Content-Security-Policy"] = "; ".join(policy)
    # The URL holds the session token: no referrer to other hosts ("no-referrer" would post forms with `Origin: null`).
    response["Referrer-Policy"] = "same-origin"
    response["Cache-Control"] = "no-store"
    return response


def _page(request, template, context, status=200, organization=None, integrations=()):
    return _secure(render(request, f"connect/{template}", context, status=status), organization, integrations)


def _error_page(request, error: PageError):
    return _page(request, "message.html", {"title": error.title, "message": error.message}, error.status)


def _pages(view):
    """Every failure of a connect page is a page of ours, never a stack trace or a JSON body."""
    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except PageError as exc:
            return _error_page(request, exc)
        except FlowFailed as exc:
            return _flow_failed(request, exc)
        except PlatformError as exc:
            return _error_page(request, PageError(400, "Something went wrong", exc.message))
    return xframe_options_exempt(wrapped)


@require_GET
@_pages
def connect_page(request, token):
    session = connect.session_open(token)
    integrations = list(session.integrations.filter(enabled=True).order_by("name"))
    if len(integrations) == 1:
        return _secure(HttpResponseRedirect(reverse("connect-integration", args=[token, integrations[0].slug])),
                       session.organization)
    return _page(request, "choose.html", {"session": session, "token": token, "integrations": integrations},
                 organization=session.organization, integrations=integrations)


@require_http_methods(["GET", "POST"])
@_pages
def connect_integration(request, token, slug):
    session = connect.session_open(token)
    integration = connect.offered_integration(session, slug)
    if integration.auth_scheme == "oauth2":
        url, browser = connect.oauth_start(session, integration, _callback_url(request))
        response = _secure(HttpResponseRedirect(url), session.organization)
        response.set_cookie(BROWSER_COOKIE, browser, max_age=int(connect.STATE_LIFETIME.total_seconds()),
                            path="/connect/", secure=request.is_secure(), httponly=True, samesite="Lax")
        return response
    context = {"session": session, "token": token, "integration": integration,
               "fields": KEY_FORM_FIELDS[integration.auth_scheme], "back": session.integrations.count() > 1}
    if request.method == "GET":
        return _page(request, "key_form.html", context, organization=session.organization, integrations=[integration])
    try:
        completed = connect.key_form_submit(session, integration, request.POST)
    except CredentialsRefused as exc:
        context.update(error=str(exc), values={"username": request.POST.get("username", "")})
        return _page(request, "key_form.html", context, 400, session.organization, [integration])
    return _flow_succeeded(request, completed)


@require_GET
@_pages
def oauth_callback(request):
    completed = connect.oauth_finish(
        state=request.GET.get("state", ""), browser=request.COOKIES.get(BROWSER_COOKIE, ""),
        code=request.GET.get("code", ""), error=request.GET.get("error", ""), redirect_uri=_callback_url(request))
    return _flow_succeeded(request, completed)


def _flow_succeeded(request, completed):
    session = completed.session
    if session.redirect_url:
        response = SeeOther(connect.redirect_with(session.redirect_url, {"public_token": completed.public_token}))
    else:
        message = {"type": "connect.success", "public_token": completed.public_token}
        response = _finished_page(request, session, message, "Connected",
                                  f"Your {session.connection.integration.name} account is connected. You can close this window.")
    return _flow_ended(response, session)


def _flow_failed(request, failure: FlowFailed):
    session = failure.session
    if session.redirect_url:
        response = SeeOther(connect.redirect_with(session.redirect_url, {"error": failure.error,
                                                                          "error_description": failure.description}))
    else:
        message = {"type": "connect.error", "error": failure.error}
        response = _finished_page(request, session, message, "Not connected", failure.description, status=400)
    return _flow_ended(response, session)


def _flow_ended(response, session):
    response.delete_cookie(BROWSER_COOKIE, path="/connect/")
    return _secure(response, session.organization)


def _finished_page(request, session, message: dict, title: str, text: str, status=200):
    return render(request, "connect/finished.html", {
        "title": title, "message_text": text, "message": json.dumps(message),
        "public_token": message.get("public_token", ""),
        "origins": json.dumps(connect.allowed_origins(session.organization)),
    }, status=status)


def csrf_failure(request, reason=""):
    """A refused form post: the connect page explains it in its own look; elsewhere (the admin) Django's page."""
    if not request.path.startswith("/connect/"):
        return django_csrf_failure(request, reason)
    return _error_page(request, PageError(
        403, "This form has expired", "Go back, reload the page and try again. Your browser must accept cookies from this site."))
