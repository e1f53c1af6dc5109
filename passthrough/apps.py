from django.apps import AppConfig


class PassthroughConfig(AppConfig):
    name = "passthrough"
    verbose_name = "Passthrough and call log"

    def ready(self):
        from connections import connect
        from passthrough.services import verify_call_record

        if verify_call_record not in connect.VERIFY_CALL_RECORDERS:
            connect.VERIFY_CALL_RECORDERS.append(verify_call_record)
