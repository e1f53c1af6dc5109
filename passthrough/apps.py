from django.apps import AppConfig


class PassthroughConfig(AppConfig):
    name = "passthrough"
    verbose_name = "Passthrough and call log"
