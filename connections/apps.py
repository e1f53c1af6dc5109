from django.apps import AppConfig


class ConnectionsConfig(AppConfig):
    name = "connections"
    verbose_name = "Catalog and connections"

    def ready(self):
        from connections import hot_cache, lifecycle, schema  # noqa: F401  (schema registers the OpenAPI auth extension)
        from connections.webhooks import announce_linked

        lifecycle.subscribe(lifecycle.LINKED, announce_linked)
        lifecycle.subscribe(lifecycle.RELINKED, announce_linked)
        hot_cache.connect_signals()
