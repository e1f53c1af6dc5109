from django.apps import AppConfig


class SyncingConfig(AppConfig):
    name = "syncing"
    verbose_name = "Syncing"

    def ready(self):
        from connections import catalog, lifecycle
        from syncing.services import connection_linked
        from syncing.spec import validate_sync_models

        catalog.register_entry_field("sync_models", validate_sync_models)
        lifecycle.subscribe(lifecycle.LINKED, connection_linked)
