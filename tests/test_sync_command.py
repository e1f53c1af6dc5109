"""`manage.py sync`: runs in the foreground; the last line is JSON `{"runs": [...]}`; a busy pair exits 1."""

import json
import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from syncing import engine
from syncing.models import Record, SyncRun, SyncState
from tests.factories import make_connection, make_integration
from tests.sync_upstream import make_records, sync_model

OLD = 1_600_000_000.0


@pytest.fixture(autouse=True)
def no_waits(monkeypatch):
    monkeypatch.setattr(engine, "sleep", lambda seconds: None)


@pytest.fixture
def connection(alice, sync_upstream):
    sync_upstream.reset(make_records(5, updated_at=OLD))
    integration = make_integration(slug="upstream", base_url=sync_upstream.url,
                                   sync_models=[sync_model("cursor"), sync_model("page", name="leads")])
    return make_connection(alice.organization, integration)[0]


def sync(*args):
    out, err, code = StringIO(), StringIO(), 0
    try:
        call_command("sync", *args, stdout=out, stderr=err)
    except SystemExit as exit:
        code = exit.code
    return code, json.loads(out.getvalue().strip().splitlines()[-1]), err.getvalue()


def test_syncs_every_model_and_prints_the_runs_as_json(connection):
    code, result, _ = sync("--connection", str(connection.pk))
    assert code == 0
    assert [(r["model"], r["status"], r["added"], r["requests"]) for r in result["runs"]] == [
        ("contacts", "DONE", 5, 2), ("leads", "DONE", 5, 2)]
    run = result["runs"][0]
    assert set(run) == {"model", "status", "added", "updated", "unchanged", "deleted", "requests", "started_at",
                        "finished_at", "duration_s"}
    assert run["started_at"].endswith("Z") and run["duration_s"] >= 0
    assert Record.objects.filter(connection=connection).count() == 10


def test_one_model_and_a_full_run(connection):
    sync("--connection", str(connection.pk), "--model", "contacts")
    code, result, _ = sync("--connection", str(connection.pk), "--model", "contacts", "--full")
    assert code == 0
    assert [(r["model"], r["unchanged"]) for r in result["runs"]] == [("contacts", 5)]
    assert SyncRun.objects.filter(connection=connection, model="contacts").first().full is True


def test_a_model_syncing_elsewhere_is_reported_and_exits_1(connection):
    SyncState.objects.filter(connection=connection, model="contacts").update(claim_id=uuid.uuid4(),
                                                                             heartbeat_at=timezone.now())
    code, result, err = sync("--connection", str(connection.pk))
    assert code == 1
    assert "already syncing elsewhere" in err
    assert result["error"] == "Already syncing elsewhere." and "contacts" in result["error_details"][0]
    assert [r["model"] for r in result["runs"]] == ["leads"]


def test_a_failed_run_is_in_the_json_and_its_error_on_stderr(connection, sync_upstream):
    sync_upstream.fault("/cursor/contacts", 403, times=1)
    code, result, err = sync("--connection", str(connection.pk), "--model", "contacts")
    assert code == 0
    assert [(r["model"], r["status"], r["requests"]) for r in result["runs"]] == [("contacts", "FAILED", 1)]
    assert "contacts: FAILED: GET " in err and "HTTP 403" in err


def test_an_unknown_connection_or_model_exits_1(connection):
    assert sync("--connection", "999999")[0] == 1
    code, result, _ = sync("--connection", str(connection.pk), "--model", "deals")
    assert code == 1 and "deals" in result["error"]


def test_no_progress_bar_when_stdout_is_not_a_terminal(connection):
    out = StringIO()
    call_command("sync", "--connection", str(connection.pk), "--model", "contacts", stdout=out)
    assert out.getvalue().count("\n") == 1 and "\r" not in out.getvalue()


class Terminal(StringIO):
    def isatty(self):
        return True


def test_a_progress_line_counts_records_and_pages_on_a_terminal(connection):
    out = Terminal()
    call_command("sync", "--connection", str(connection.pk), "--model", "contacts", stdout=out)
    progress, result = out.getvalue().rstrip("\n").split("\n")
    assert progress.startswith("\rcontacts:")
    assert progress.split("\r")[-1].split() == ["contacts:", "5", "records", "2", "pages"]
    assert json.loads(result)["runs"][0]["added"] == 5
