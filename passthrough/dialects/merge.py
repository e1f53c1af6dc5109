"""Merge-compatible dialect under /merge/api/: see ../shared/spec/merge.md (views in merge_views.py).

Every route is `{category}/v1/<endpoint>`, matched with or without a trailing slash and never redirected (the
SDK follows redirects and would turn a POST into a GET). Anything else under /merge/api/ is a JSON 404.
"""

from django.http import JsonResponse
from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt

from passthrough.dialects import merge_views as views

CATEGORY = "(?P<category>{})".format("|".join(views.CATEGORIES))


def endpoint(route: str, view, name: str):
    """`<category>/v1/<route>` for every Merge category; the optional slash is a group so the schema shows none."""
    return re_path(rf"^{CATEGORY}/v1/{route}(?:/)?$", view.as_view(), name=name)


@csrf_exempt
def not_found(request):
    """Unknown categories and endpoints (including Merge's common models, not offered yet): never a 5xx or 501."""
    return JsonResponse({"detail": "Not found."}, status=404)


urlpatterns = [
    endpoint("passthrough", views.PassthroughView, "merge-passthrough"),
    endpoint("async-passthrough", views.AsyncPassthroughView, "merge-async-passthrough"),
    endpoint("async-passthrough/(?P<receipt_id>[^/]+)", views.AsyncPassthroughResultView, "merge-async-passthrough-result"),
    endpoint("account-details", views.AccountDetailsView, "merge-account-details"),
    endpoint("linked-accounts", views.LinkedAccountsView, "merge-linked-accounts"),
    endpoint("account-token/(?P<public_token>[^/]+)", views.AccountTokenView, "merge-account-token"),
    endpoint("link-token", views.LinkTokenView, "merge-link-token"),
    endpoint("delete-account", views.DeleteAccountView, "merge-delete-account"),
    endpoint("sync-status", views.SyncStatusView, "merge-sync-status"),
    endpoint("sync-status/resync", views.ResyncView, "merge-resync"),
    re_path(r"", not_found, name="merge-not-found"),
]
