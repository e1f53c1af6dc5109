import json
import sys

from connections.models import Connection
from integration_platform.commands import JsonCommand
from integration_platform.errors import InvalidInput
from syncing import services
from syncing.spec import sync_model_specs


class Command(JsonCommand):
    help = ("Sync a connection's models now, in this process (every enabled model, or --model). The last line is "
            'JSON {"runs": [...]}; exit 1 if a model is already syncing elsewhere.')

    def add_arguments(self, parser):
        parser.add_argument("--connection", required=True, type=int, help="Connection id.")
        parser.add_argument("--model", help="One model (default: every enabled model).")
        parser.add_argument("--full", action="store_true", help="Fetch everything and detect deletions.")

    def run(self, connection, model, full, **options):
        connection_id = connection
        connection = Connection.objects.select_related("integration", "organization").filter(pk=connection_id).first()
        if connection is None:
            raise InvalidInput("Invalid input.", [f"connection: Unknown connection {connection_id}."])
        states = services.ensure_states(connection)
        if model is not None:
            models = [model]
        else:
            models = [spec.name for spec in sync_model_specs(connection.integration) if states[spec.name].enabled]
        runs, busy = [], []
        for name in models:
            try:
                run = services.sync_now(connection, name, full=full, progress=self._progress)
            except services.AlreadySyncing as exc:
                self.stderr.write(exc.message)
                busy.append(exc.message)
                continue
            finally:
                self._end_progress()
            if run is None:
                continue
            if run.error:
                self.stderr.write(f"{run.model}: {run.status}: {run.error}")
            runs.append(self._summary(run))
        result = {"runs": runs}
        if busy:
            self.stdout.write(json.dumps({**result, "error": "Already syncing elsewhere.", "error_details": busy}))
            sys.exit(1)
        return result

    def _progress(self, run):
        if self.stdout.isatty():
            self.stdout.write(f"\r{run.model}: {run.added + run.updated + run.unchanged:>10,} records "
                              f"{run.pages:>7,} pages", ending="")
            self.stdout.flush()

    def _end_progress(self):
        if self.stdout.isatty():
            self.stdout.write("")

    @staticmethod
    def _summary(run) -> dict:
        return {"model": run.model, "status": run.status, "added": run.added, "updated": run.updated,
                "unchanged": run.unchanged, "deleted": run.deleted, "requests": run.requests,
                "started_at": services.iso(run.started_at), "finished_at": services.iso(run.finished_at),
                "duration_s": run.duration_s}
