from django.urls import re_path

from syncing.api import views

CONNECTION = r"^connections/(?P<connection_id>[0-9]{1,18})"
MODEL = r"(?P<model>[A-Za-z0-9_][A-Za-z0-9_.-]*)"

urlpatterns = [
    re_path(rf"{CONNECTION}/records/{MODEL}/?$", views.RecordListView.as_view(), name="sync-records"),
    re_path(rf"{CONNECTION}/sync-status/?$", views.SyncStatusView.as_view(), name="sync-status"),
    re_path(rf"{CONNECTION}/sync/?$", views.SyncView.as_view(), name="sync"),
    re_path(rf"{CONNECTION}/sync-models/{MODEL}/?$", views.SyncModelView.as_view(), name="sync-model"),
]
