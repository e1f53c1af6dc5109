"""Asking for runs, the schedule, the worker, and the claim that keeps one (connection, model) pair to one run."""

import threading
import uuid
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection as db_connection
from django.utils import timezone

import syncing.tasks  # noqa: F401 (declares the syncing queue for broker.join)
from syncing import engine, services
from syncing.models import Record, SyncRun, SyncState
from tests.factories import make_connection, make_integration
from tests.sync_upstream import make_records, sync_model

OLD = 1_600_000_000.0
QUEUE = "syncing"


@pytest.fixture(autouse=True)
def no_waits(monkeypatch):
    monkeypatch.setattr(engine, "sleep", lambda seconds: None)


def connect(tenant, upstream, **model):
    integration = make_integration(slug="upstream", base_url=upstream.url, sync_models=[sync_model(**model)])
    connection, _ = make_connection(tenant.organization, integration)
    return connection


def run_jobs(broker, worker):
    broker.join(QUEUE)
    worker.join()


def state_of(connection, model="contacts") -> SyncState:
    return SyncState.objects.get(connection=connection, model=model)


# --- The worker ----------------------------------------------------------------------------------------------------

def test_a_new_connection_starts_a_full_run_of_its_scheduled_models(alice, sync_upstream, broker, worker):
    sync_upstream.reset(make_records(5, updated_at=OLD))
    connection = connect(alice, sync_upstream, frequency_seconds=3600)
    run_jobs(broker, worker)
    run = SyncRun.objects.get(connection=connection)
    assert (run.status, run.full, run.trigger, run.added) == ("DONE", True, "link", 5)
    state = state_of(connection)
    assert state.requested_at is None and state.claim_id is None
    assert state.next_sync_at == run.started_at + timedelta(seconds=3600)


def test_a_manual_only_model_does_not_run_at_link_time(alice, sync_upstream, broker, worker):
    connection = connect(alice, sync_upstream, frequency_seconds=None)
    run_jobs(broker, worker)
    assert not SyncRun.objects.exists()
    assert state_of(connection).next_sync_at is None
    assert services.sync_statuses(connection)[0]["status"] == "PAUSED"


def test_an_api_request_runs_in_the_worker(alice, sync_upstream, broker, worker):
    sync_upstream.reset(make_records(4, updated_at=OLD))
    connection = connect(alice, sync_upstream)
    response = alice.client.post(f"/api/v1/connections/{connection.pk}/sync", {"full": True}, format="json")
    assert response.status_code == 202
    assert response.json()["results"][0]["status"] == "SYNCING"
    run_jobs(broker, worker)
    assert SyncRun.objects.get(connection=connection).trigger == "api"
    assert Record.objects.filter(connection=connection).count() == 4
    assert services.sync_statuses(connection)[0]["status"] == "DONE"


def test_a_duplicate_message_runs_the_pair_once(alice, sync_upstream, broker, worker):
    connection = connect(alice, sync_upstream)
    state = state_of(connection)
    services.sync_request(connection)
    services.enqueue(state.pk)
    run_jobs(broker, worker)
    assert SyncRun.objects.filter(connection=connection).count() == 1


# --- The claim -----------------------------------------------------------------------------------------------------

def at_once(function, threads: int) -> list:
    """`function()` in `threads` threads released at the same instant (each with its own database connection);
    returns their results."""
    barrier = threading.Barrier(threads)
    results, errors = [], []

    def call():
        try:
            barrier.wait()
            results.append(function())
        except Exception as exc:
            errors.append(exc)
        finally:
            db_connection.close()

    started = [threading.Thread(target=call) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(timeout=60)
    assert errors == []
    return results


def racing_workers(state_id, workers: int) -> list:
    """`workers` threads run the worker's job for one pair at the same instant; returns the runs they made."""
    return [run for run in at_once(lambda: services.sync_requested(state_id), workers) if run is not None]


def test_two_concurrent_claims_never_run_one_pair_twice(alice, sync_upstream, transactional_db):
    sync_upstream.reset(make_records(6, updated_at=OLD))
    connection = connect(alice, sync_upstream)
    state = state_of(connection)
    for _ in range(5):
        services.sync_request(connection, full=True)
        sync_upstream.clear_log()
        runs = racing_workers(state.pk, workers=4)
        assert [run.status for run in runs] == ["DONE"]
        assert len(sync_upstream.log()) == 2  # one walk of the two pages
    assert SyncRun.objects.filter(connection=connection).count() == 5


def test_a_second_worker_does_not_run_a_pair_while_the_first_runs_it(alice, sync_upstream, transactional_db):
    sync_upstream.reset(make_records(9, updated_at=OLD))
    connection = connect(alice, sync_upstream)
    services.sync_request(connection, full=True)
    state = state_of(connection)
    first_page_stored, second_worker_done = threading.Event(), threading.Event()
    results = {}

    def pause_after_first_page(run):
        if run.pages == 1:
            first_page_stored.set()
            second_worker_done.wait(timeout=30)

    def first_worker():
        try:
            claimed = services._claim(state.pk, need_request=True)
            results["first"] = services._run(*claimed[:2], full=claimed[2], trigger="test",
                                             progress=pause_after_first_page)
        finally:
            db_connection.close()

    thread = threading.Thread(target=first_worker)
    thread.start()
    assert first_page_stored.wait(timeout=30)
    services.sync_request(connection)  # asked again while it runs
    results["second"] = services.sync_requested(state.pk)
    with pytest.raises(services.AlreadySyncing):
        services.sync_now(connection, "contacts")
    second_worker_done.set()
    thread.join(timeout=60)
    assert results["second"] is None and results["first"].status == "DONE"
    assert SyncRun.objects.filter(connection=connection).count() == 1
    assert len([e for e in sync_upstream.log() if e["query"].get("cursor") is None]) == 1  # one first page
    # The request made meanwhile is served by the next run, not lost.
    assert services.sync_requested(state.pk).status == "DONE"


def test_a_pair_running_elsewhere_is_not_run_and_its_request_waits(alice, sync_upstream):
    connection = connect(alice, sync_upstream)
    SyncState.objects.filter(connection=connection).update(claim_id=uuid.uuid4(), heartbeat_at=timezone.now())
    services.sync_request(connection)
    assert services.sync_requested(state_of(connection).pk) is None
    with pytest.raises(services.AlreadySyncing):
        services.sync_now(connection, "contacts")
    assert state_of(connection).requested_at is not None
    assert not SyncRun.objects.exists()


def test_a_request_made_during_a_run_is_served_right_after_it(alice, sync_upstream, django_capture_on_commit_callbacks):
    sync_upstream.reset(make_records(4, updated_at=OLD))
    connection = connect(alice, sync_upstream)
    asked_during = []

    def progress(run):
        if not asked_during:
            asked_during.append(services.sync_request(connection))

    with mock.patch.object(services, "enqueue") as enqueue:
        with django_capture_on_commit_callbacks(execute=True):
            services.sync_now(connection, "contacts", progress=progress)
    state = state_of(connection)
    assert state.requested_at is not None and state.claim_id is None
    assert enqueue.call_args_list[-1] == mock.call(state.pk)
    assert services.sync_requested(state.pk).status == "DONE"


def test_a_claim_whose_worker_went_silent_is_taken_over(alice, sync_upstream, settings):
    connection = connect(alice, sync_upstream)
    silent = timezone.now() - timedelta(seconds=settings.SYNC_LOST_AFTER_SECONDS + 1)
    SyncState.objects.filter(connection=connection).update(claim_id=uuid.uuid4(), heartbeat_at=silent)
    lost = SyncRun.objects.create(connection=connection, model="contacts")
    run = services.sync_now(connection, "contacts")
    assert run.status == "DONE"
    lost.refresh_from_db()
    assert lost.status == "FAILED" and "stopped answering" in lost.error


@pytest.mark.parametrize("every, distinct", [(0.0, 3), (3600.0, 1)])
def test_a_run_writes_its_heartbeat_every_heartbeat_seconds_not_on_every_page(alice, sync_upstream, monkeypatch,
                                                                             every, distinct):
    monkeypatch.setattr(engine, "HEARTBEAT_SECONDS", every)
    sync_upstream.reset(make_records(7, updated_at=OLD))
    connection = connect(alice, sync_upstream)
    heartbeats = []
    services.sync_now(connection, "contacts", progress=lambda run: heartbeats.append(state_of(connection).heartbeat_at))
    assert len(heartbeats) == 3 and len(set(heartbeats)) == distinct


def test_a_run_that_lost_its_claim_stops_and_leaves_the_state_to_the_new_owner(alice, sync_upstream):
    sync_upstream.reset(make_records(9, updated_at=OLD))
    connection = connect(alice, sync_upstream)
    thief = uuid.uuid4()

    def steal(run):
        SyncState.objects.filter(connection=connection).update(claim_id=thief)

    run = services.sync_now(connection, "contacts", progress=steal)
    assert run.status == "FAILED" and run.pages == 1
    assert state_of(connection).claim_id == thief


# --- The schedule --------------------------------------------------------------------------------------------------

def test_the_schedule_asks_for_due_pairs_once_even_with_two_schedulers(alice, sync_upstream,
                                                                        django_capture_on_commit_callbacks):
    connection = connect(alice, sync_upstream, frequency_seconds=3600)
    SyncState.objects.filter(connection=connection).update(requested_at=None, next_sync_at=timezone.now() - timedelta(seconds=1))
    with mock.patch.object(services, "enqueue") as enqueue:
        with django_capture_on_commit_callbacks(execute=True):
            first = services.schedule_syncs()
            second = services.schedule_syncs()
    assert (first["asked"], second["asked"]) == (1, 0)
    assert enqueue.call_args_list == [mock.call(state_of(connection).pk)]
    assert state_of(connection).requested_by == "schedule"


def test_two_concurrent_schedulers_never_run_one_pair_twice(alice, sync_upstream, transactional_db):
    sync_upstream.reset(make_records(6, updated_at=OLD))
    enqueued = []
    with mock.patch.object(services, "enqueue", enqueued.append):
        connection = connect(alice, sync_upstream, frequency_seconds=3600)
        state = state_of(connection)
        for _ in range(3):
            SyncState.objects.filter(pk=state.pk).update(requested_at=None, requested_by="",
                                                         next_sync_at=timezone.now() - timedelta(seconds=1))
            enqueued.clear()
            asked = at_once(services.schedule_syncs, threads=2)
            assert sorted(result["asked"] for result in asked) == [0, 1]
            assert enqueued == [state.pk]
            # Each scheduler's message reaching a worker (and a duplicate): one run.
            assert [run.status for run in racing_workers(state.pk, workers=2)] == ["DONE"]
    assert SyncRun.objects.filter(connection=connection).count() == 3


def test_the_periodic_job_runs_due_pairs_on_the_syncing_queue(alice, sync_upstream, broker, worker):
    sync_upstream.reset(make_records(4, updated_at=OLD))
    connection = connect(alice, sync_upstream, frequency_seconds=3600)
    run_jobs(broker, worker)  # the first, full run at link time
    SyncState.objects.filter(connection=connection).update(next_sync_at=timezone.now() - timedelta(seconds=1))
    syncing.tasks.schedule_syncs.send()
    broker.join("maintenance")
    run_jobs(broker, worker)
    runs = SyncRun.objects.filter(connection=connection).order_by("started_at")
    assert [(run.trigger, run.full, run.status) for run in runs] == [("link", True, "DONE"), ("schedule", False, "DONE")]


def test_the_sync_schedule_is_a_periodic_job_every_minute_beside_the_async_sweep():
    from integration_platform.scheduler import build_scheduler

    job = build_scheduler().get_job("syncing.tasks.schedule_syncs")
    assert job.trigger.interval == timedelta(seconds=60)
    assert build_scheduler().get_job("passthrough.tasks.sweep_async_passthrough") is not None


def test_a_pair_not_yet_due_is_not_asked_for(alice, sync_upstream):
    connection = connect(alice, sync_upstream, frequency_seconds=3600)
    SyncState.objects.filter(connection=connection).update(requested_at=None, next_sync_at=timezone.now() + timedelta(minutes=5))
    assert services.schedule_syncs()["asked"] == 0


def test_a_failed_run_is_scheduled_again_sooner_than_the_frequency(alice, sync_upstream, settings):
    connection = connect(alice, sync_upstream, frequency_seconds=86400)
    sync_upstream.fault("/cursor/contacts", 500, times=99)
    run = services.sync_now(connection, "contacts")
    assert run.status == "FAILED"
    assert state_of(connection).next_sync_at == run.finished_at + timedelta(seconds=settings.SYNC_RETRY_FAILED_AFTER_SECONDS)


def test_the_schedule_recovers_a_pair_whose_worker_died(alice, sync_upstream, settings):
    connection = connect(alice, sync_upstream)
    silent = timezone.now() - timedelta(seconds=settings.SYNC_LOST_AFTER_SECONDS + 1)
    SyncState.objects.filter(connection=connection).update(claim_id=uuid.uuid4(), heartbeat_at=silent)
    lost = SyncRun.objects.create(connection=connection, model="contacts")
    assert services.schedule_syncs()["recovered"] == 1
    lost.refresh_from_db()
    state = state_of(connection)
    assert lost.status == "FAILED" and state.claim_id is None and state.requested_at is not None


def test_the_schedule_resends_a_request_whose_job_was_lost(alice, sync_upstream, settings):
    connection = connect(alice, sync_upstream)
    services.sync_request(connection)
    SyncState.objects.filter(connection=connection).update(
        enqueued_at=timezone.now() - timedelta(seconds=settings.SYNC_REQUEUE_AFTER_SECONDS + 1))
    assert services.schedule_syncs()["resent"] == 1
    assert services.schedule_syncs()["resent"] == 0


def test_the_schedule_covers_connections_made_outside_the_api(alice, sync_upstream):
    integration = make_integration(slug="upstream", base_url=sync_upstream.url,
                                   sync_models=[sync_model(frequency_seconds=600)])
    connection, _ = make_connection(alice.organization, integration)
    SyncState.objects.all().delete()  # as if made in the admin
    assert services.schedule_syncs()["asked"] == 1
    assert state_of(connection).requested_by == "schedule"


def test_a_disabled_model_is_neither_scheduled_nor_run(alice, sync_upstream):
    connection = connect(alice, sync_upstream, frequency_seconds=600)
    services.model_enable(connection, "contacts", False)
    SyncState.objects.filter(connection=connection).update(next_sync_at=timezone.now() - timedelta(seconds=1))
    assert services.schedule_syncs()["asked"] == 0
    assert services.sync_requested(state_of(connection).pk) is None
    assert services.sync_statuses(connection)[0]["status"] == "DISABLED"
