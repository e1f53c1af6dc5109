"""Syncing: asking for runs, claiming and running them, scheduling, and the statuses the APIs show.

A run of one (connection, model) pair is asked for by setting `SyncState.requested_at` (the row is the truth) and
sending a `syncing` job after commit; the job claims the pair with a conditional UPDATE and runs it (engine.py).
A request that arrives while the pair runs is kept and served right after. The periodic `schedule_syncs` asks for
due pairs, takes over pairs whose worker died, and re-sends requests whose job was lost.
"""

import logging
import uuid
from datetime import timedelta, timezone as dt_timezone

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from connections.client import ensure_usable
from connections.models import Connection, Integration
from connections.webhooks import webhook_send
from integration_platform.errors import ConnectionUnusable, InvalidInput, NotFound
from syncing import engine
from syncing.models import Record, SyncRun, SyncState
from syncing.spec import sync_model_spec, sync_model_specs

log = logging.getLogger(__name__)
LOST_RUN = "The worker running this sync stopped answering; the sync was taken over or will run again."


class AlreadySyncing(InvalidInput):
    """The pair is being synced elsewhere right now."""


# --- States --------------------------------------------------------------------------------------------------------

def ensure_states(connection: Connection) -> dict:
    """The connection's SyncState per declared model (created if missing), by model name, in catalog order."""
    specs = sync_model_specs(connection.integration)
    states = {state.model: state for state in connection.sync_states.all()}
    missing = [spec for spec in specs if spec.name not in states]
    if missing:
        now = timezone.now()
        SyncState.objects.bulk_create([SyncState(connection=connection, model=spec.name,
                                                 next_sync_at=now if spec.frequency_seconds else None)
                                       for spec in missing], ignore_conflicts=True)
        states = {state.model: state for state in connection.sync_states.all()}
    return {spec.name: states[spec.name] for spec in specs}


def _state(connection: Connection, model: str) -> SyncState:
    state = ensure_states(connection).get(model)
    if state is None:
        raise NotFound(f"Unknown model {model!r}.", [f"model: {connection.integration.slug} syncs "
                                                       f"{', '.join(ensure_states(connection)) or 'nothing'}."])
    return state


def model_enable(connection: Connection, model: str, enabled: bool) -> SyncState:
    """Switch syncing of one model of a connection on or off (operators, API). Off also drops a pending request."""
    state = _state(connection, model)
    changes = {"enabled": enabled}
    if not enabled:
        changes.update(requested_at=None, requested_full=False, requested_by="")
    elif sync_model_spec(connection.integration, model).frequency_seconds and state.next_sync_at is None:
        changes["next_sync_at"] = timezone.now()
    SyncState.objects.filter(pk=state.pk).update(**changes)
    state.refresh_from_db()
    return state


# --- Asking for runs -----------------------------------------------------------------------------------------------

def _ask(state_ids, *, full: bool, trigger: str) -> None:
    """Record a request for each pair (an earlier pending one is kept) and wake a worker after commit."""
    now = timezone.now()
    # SQL evaluates every SET expression on the old row: the first pending request keeps its time and trigger.
    changes = {"requested_at": Coalesce(F("requested_at"), Value(now)), "enqueued_at": now,
               "requested_by": Case(When(requested_at__isnull=True, then=Value(trigger)), default=F("requested_by"))}
    if full:
        changes["requested_full"] = True
    SyncState.objects.filter(pk__in=state_ids, enabled=True).update(**changes)
    for state_id in state_ids:
        transaction.on_commit(lambda state_id=state_id: enqueue(state_id))


def enqueue(state_id) -> None:
    """Wake a worker. A broker outage is not an error for the caller: `schedule_syncs` sends it again later."""
    from syncing.tasks import run_sync

    try:
        run_sync.send(state_id)
    except Exception:
        log.warning("Could not enqueue sync %s; the scheduler will retry.", state_id, exc_info=True)


def sync_request(connection: Connection, models=None, *, full: bool = False, trigger: str = "api") -> list[dict]:
    """Ask for runs of `models` (default: every enabled model) of a connection; returns their statuses.

    Raises ConnectionUnusable, or InvalidInput for an unknown or disabled model named explicitly."""
    ensure_usable(connection)
    states = ensure_states(connection)
    if models is None:
        chosen = [state for state in states.values() if state.enabled]
    else:
        unknown = [name for name in models if name not in states]
        disabled = [name for name in models if name in states and not states[name].enabled]
        errors = [f"models: Unknown model {name!r}." for name in unknown]
        errors += [f"models: Syncing of {name!r} is disabled for this connection." for name in disabled]
        if errors:
            raise InvalidInput("Invalid input.", errors)
        chosen = [states[name] for name in dict.fromkeys(models)]
    with transaction.atomic():  # workers are woken after the answer is computed
        _ask([state.pk for state in chosen], full=full, trigger=trigger)
        return sync_statuses(connection)


def connection_linked(connection: Connection, **details) -> None:
    """A connection was created (lifecycle LINKED): start the first, full run of every model that syncs on a
    schedule (manual-only models wait to be asked)."""
    with transaction.atomic():
        states = ensure_states(connection)
        specs = {spec.name: spec for spec in sync_model_specs(connection.integration)}
        scheduled = [state.pk for name, state in states.items() if specs[name].frequency_seconds and state.enabled]
        if scheduled:
            SyncState.objects.filter(pk__in=scheduled).update(next_sync_at=None)
            _ask(scheduled, full=True, trigger="link")


# --- Running -------------------------------------------------------------------------------------------------------

def _claim(state_id, *, need_request: bool):
    """Take the pair for one run; returns (state, claim_id, requested_full, requested_by) or None if it is taken,
    disabled, or (with need_request) nothing is asked for. The pending request is served by this run."""
    for _ in range(3):
        now = timezone.now()
        current = SyncState.objects.filter(pk=state_id).values("requested_at", "requested_full", "requested_by").first()
        if current is None or (need_request and current["requested_at"] is None):
            return None
        free = Q(claim_id__isnull=True) | Q(heartbeat_at__lt=now - timedelta(seconds=settings.SYNC_LOST_AFTER_SECONDS))
        claim_id = uuid.uuid4()
        taken = SyncState.objects.filter(free, pk=state_id, enabled=True, requested_at=current["requested_at"],
                                         requested_full=current["requested_full"]).update(
            claim_id=claim_id, heartbeat_at=now, next_sync_at=None,
            requested_at=None, requested_full=False, requested_by="")
        if taken:
            state = SyncState.objects.select_related("connection__integration", "connection__organization").get(pk=state_id)
            _fail_lost_runs(state, now)
            return state, claim_id, current["requested_full"], current["requested_by"]
        still = SyncState.objects.filter(free, pk=state_id, enabled=True).exists()
        if not still:
            return None
    return None


def _fail_lost_runs(state: SyncState, now) -> None:
    SyncRun.objects.filter(connection_id=state.connection_id, model=state.model, status=SyncRun.SYNCING).update(
        status=SyncRun.FAILED, error=LOST_RUN, finished_at=now)


def sync_requested(state_id) -> SyncRun | None:
    """A worker's job: run the pair if a run is asked for and nobody runs it; None if there was nothing to do."""
    claimed = _claim(state_id, need_request=True)
    if claimed is None:
        return None
    state, claim_id, full, trigger = claimed
    return _run(state, claim_id, full=full, trigger=trigger or "schedule")


def sync_now(connection: Connection, model: str, *, full: bool = False, progress=None) -> SyncRun:
    """Run one model of a connection in this process (the `sync` command). AlreadySyncing if it runs elsewhere."""
    state = _state(connection, model)
    if not state.enabled:
        raise InvalidInput("Invalid input.", [f"model: Syncing of {model!r} is disabled for this connection."])
    claimed = _claim(state.pk, need_request=False)
    if claimed is None:
        raise AlreadySyncing(f"{model} of connection {connection.pk} is already syncing elsewhere; try again later.")
    state, claim_id, requested_full, _ = claimed
    return _run(state, claim_id, full=full or requested_full, trigger="command", progress=progress)


def _run(state: SyncState, claim_id, *, full: bool, trigger: str, progress=None) -> SyncRun | None:
    spec = sync_model_spec(state.connection.integration, state.model)
    if spec is None:  # removed from the catalog since it was asked for
        SyncState.objects.filter(pk=state.pk, claim_id=claim_id).update(claim_id=None, heartbeat_at=None)
        return None
    run = engine.run_sync(state, claim_id, spec, full=full, trigger=trigger, progress=progress)
    _finish(state, claim_id, spec, run)
    return run


def _finish(state: SyncState, claim_id, spec, run: SyncRun) -> None:
    """Release the claim, move the incremental start and the next due time, announce the result."""
    success = run.status in SyncRun.SUCCESSFUL
    if spec.frequency_seconds is None:
        next_at = None
    elif success:
        next_at = run.started_at + timedelta(seconds=spec.frequency_seconds)
    else:
        next_at = run.finished_at + timedelta(seconds=min(spec.frequency_seconds, settings.SYNC_RETRY_FAILED_AFTER_SECONDS))
    changes = {"claim_id": None, "heartbeat_at": None, "next_sync_at": next_at}
    if success:
        changes["last_success_started_at"] = run.started_at
    if not SyncState.objects.filter(pk=state.pk, claim_id=claim_id).update(**changes):
        return  # taken over by another worker: its run decides
    connection = state.connection
    webhook_send(connection.organization, "sync.completed", connection=connection, data={
        "model": run.model, "status": run.status, "full": run.full, "sync_run_id": str(run.pk),
        "started_at": iso(run.started_at), "finished_at": iso(run.finished_at), "counts": run.counts(),
        "error": run.error or None,
    })
    if SyncState.objects.filter(pk=state.pk, requested_at__isnull=False).exists():
        transaction.on_commit(lambda: enqueue(state.pk))  # asked for again while this run was going


# --- Scheduling ----------------------------------------------------------------------------------------------------

def schedule_syncs() -> dict:
    """The periodic job: ask for due pairs, take back pairs whose worker died, re-send lost requests."""
    now = timezone.now()
    with transaction.atomic():
        return {**_ask_due(now), **_recover(now)}


def _ask_due(now) -> dict:
    _ensure_all_states(now)
    due = SyncState.objects.filter(enabled=True, next_sync_at__lte=now, requested_at__isnull=True,
                                   claim_id__isnull=True, connection__status=Connection.STATUS_ACTIVE,
                                   connection__integration__enabled=True)
    asked = 0
    for state_id in due.values_list("pk", flat=True):
        # Conditional: of two schedulers, one asks.
        if SyncState.objects.filter(pk=state_id, requested_at__isnull=True, claim_id__isnull=True).update(
                requested_at=now, enqueued_at=now, requested_by="schedule"):
            transaction.on_commit(lambda state_id=state_id: enqueue(state_id))
            asked += 1
    return {"asked": asked}


def _recover(now) -> dict:
    lost_after = now - timedelta(seconds=settings.SYNC_LOST_AFTER_SECONDS)
    recovered = 0
    for state in SyncState.objects.filter(claim_id__isnull=False, heartbeat_at__lt=lost_after):
        if SyncState.objects.filter(pk=state.pk, claim_id=state.claim_id).update(
                claim_id=None, heartbeat_at=None, requested_at=Coalesce(F("requested_at"), Value(now)),
                enqueued_at=now, requested_by="recovery"):
            _fail_lost_runs(state, now)
            transaction.on_commit(lambda state_id=state.pk: enqueue(state_id))
            recovered += 1
    stale = now - timedelta(seconds=settings.SYNC_REQUEUE_AFTER_SECONDS)
    resent = 0
    for state_id in SyncState.objects.filter(requested_at__isnull=False, claim_id__isnull=True, enabled=True,
                                             enqueued_at__lt=stale).values_list("pk", flat=True):
        if SyncState.objects.filter(pk=state_id, claim_id__isnull=True, enqueued_at__lt=stale).update(enqueued_at=now):
            transaction.on_commit(lambda state_id=state_id: enqueue(state_id))
            resent += 1
    return {"recovered": recovered, "resent": resent}


def _ensure_all_states(now) -> None:
    """States for connections made outside `connection_create` (admin) and for models added to the catalog; the
    schedule follows catalog changes of frequency_seconds."""
    for integration in Integration.objects.filter(enabled=True):
        for spec in sync_model_specs(integration):
            missing = Connection.objects.filter(integration=integration).exclude(sync_states__model=spec.name)
            SyncState.objects.bulk_create([SyncState(connection_id=pk, model=spec.name,
                                                     next_sync_at=now if spec.frequency_seconds else None)
                                           for pk in missing.values_list("pk", flat=True)], ignore_conflicts=True)
            states = SyncState.objects.filter(connection__integration=integration, model=spec.name)
            if spec.frequency_seconds:
                states.filter(next_sync_at__isnull=True, claim_id__isnull=True, requested_at__isnull=True,
                              enabled=True).update(next_sync_at=now)
            else:
                states.filter(next_sync_at__isnull=False).update(next_sync_at=None)


# --- Statuses ------------------------------------------------------------------------------------------------------

def iso(moment) -> str | None:
    """ISO-8601 in UTC with Z and microseconds, e.g. 2026-11-23T06:24:29.123456Z."""
    if moment is None:
        return None
    return moment.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _model_statuses(connection: Connection) -> list[dict]:
    """Per declared model: its state, latest run and latest finished run, and the derived status."""
    states = ensure_states(connection)
    usable = connection.status == Connection.STATUS_ACTIVE and connection.integration.enabled
    lost_after = timezone.now() - timedelta(seconds=settings.SYNC_LOST_AFTER_SECONDS)
    rows = []
    for spec in sync_model_specs(connection.integration):
        state = states[spec.name]
        runs = SyncRun.objects.filter(connection=connection, model=spec.name)
        latest = runs.first()
        finished = latest if latest is not None and latest.finished_at else runs.filter(finished_at__isnull=False).first()
        running = state.claim_id is not None and state.heartbeat_at is not None and state.heartbeat_at >= lost_after
        if not state.enabled:
            status = SyncRun.DISABLED
        elif not usable:
            status = SyncRun.PAUSED
        elif running or state.requested_at is not None:
            status = SyncRun.SYNCING
        elif finished is not None:
            status = finished.status
        else:
            status = SyncRun.SYNCING if spec.frequency_seconds else SyncRun.PAUSED
        next_at = state.next_sync_at if state.enabled and spec.frequency_seconds else None
        if next_at is None and running and spec.frequency_seconds and latest is not None:
            next_at = latest.started_at + timedelta(seconds=spec.frequency_seconds)
        rows.append({"spec": spec, "state": state, "latest": latest, "finished": finished, "status": status,
                     "next_sync_start": next_at})
    return rows


def sync_statuses(connection: Connection) -> list[dict]:
    """The native sync-status of every declared model of a connection (datetimes as ISO strings)."""
    statuses = []
    for row in _model_statuses(connection):
        spec, state, latest, finished = row["spec"], row["state"], row["latest"], row["finished"]
        counts = finished.counts() if finished else {key: 0 for key in SyncRun().counts()}
        counts["records"] = Record.objects.filter(connection=connection, model=spec.name, remote_was_deleted=False).count()
        statuses.append({
            "model": spec.name, "enabled": state.enabled, "frequency_seconds": spec.frequency_seconds,
            "status": row["status"], "last_sync_result": finished.status if finished else None,
            "last_sync_start": iso(latest.started_at) if latest else None,
            "last_sync_finished": iso(finished.finished_at) if finished else None,
            "next_sync_start": iso(row["next_sync_start"]), "is_initial_sync": state.last_success_started_at is None,
            "data_fresh_as_of": iso(state.last_success_started_at), "error": finished.error or None if finished else None,
            "counts": counts,
        })
    return statuses


def sync_status_for(connection: Connection, category: str) -> list[dict]:
    """Merge's SyncStatus objects (spec/merge.md §8) for every declared model of a connection: `model_name` is the
    declared name, `model_id` `<category>.<name>` with the category of the caller's URL. Datetimes are aware
    `datetime`s for the serializer. An empty list if the integration syncs nothing."""
    return [{
        "model_name": row["spec"].name, "model_id": f"{category}.{row['spec'].name}",
        "last_sync_start": row["latest"].started_at if row["latest"] else None,
        "next_sync_start": row["next_sync_start"],
        "last_sync_result": row["finished"].status if row["finished"] else None,
        "last_sync_finished": row["finished"].finished_at if row["finished"] else None,
        "data_fresh_as_of": row["state"].last_success_started_at, "historical_data_since": None,
        "status": row["status"], "sync_status_reason": None,
        "is_initial_sync": row["state"].last_success_started_at is None,
        "selective_sync_configurations_usage": None,
    } for row in _model_statuses(connection)]


def resync(connection: Connection, category: str) -> list[dict]:
    """Merge's resync: ask for a run of every enabled model now; returns `sync_status_for` (those models SYNCING).

    A connection that cannot make calls asks for nothing: its models keep their status (PAUSED)."""
    try:
        ensure_usable(connection)
    except ConnectionUnusable:
        return sync_status_for(connection, category)
    with transaction.atomic():
        _ask([state.pk for state in ensure_states(connection).values() if state.enabled], full=False, trigger="resync")
        return sync_status_for(connection, category)
