from django.apps import AppConfig


class ConnectionsConfig(AppConfig):
    name = "connections"
    verbose_name = "Catalog and connections"

    def ready(self):
        from connections import schema  # noqa: F401  (registers the OpenAPI auth extension)
