from django.apps import AppConfig


class SyncingConfig(AppConfig):
    name = "syncing"
    verbose_name = "Syncing"
