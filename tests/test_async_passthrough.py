"""Async passthrough: receipts, statuses, deadlines, retention, retrieval limit, webhooks, lost workers."""

import base64
import hashlib
import hmac
import json
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from connections.models import WebhookDelivery
from passthrough import async_passthrough
from passthrough.models import AsyncPassthroughRequest, FunctionCall
from tests.factories import make_connection, make_integration
from tests.servers import free_port, recording_server

QUEUE = "async_passthrough"


@pytest.fixture
def httpbin_connection(alice, httpbin_integration):
    return make_connection(alice.organization, httpbin_integration)


def create(tenant, token, **body):
    return tenant.client.post("/api/v1/async-passthrough", {"method": "GET", "path": "/anything", **body},
                              format="json", HTTP_X_ACCOUNT_TOKEN=token)


def poll(tenant, receipt_id):
    return tenant.client.get(f"/api/v1/async-passthrough/{receipt_id}")


def run_jobs(broker, worker):
    broker.join(QUEUE)
    worker.join()


def test_create_answers_at_once_with_a_receipt_and_pending_status(alice, httpbin_connection, broker):
    _, token = httpbin_connection
    response = create(alice, token)
    assert response.status_code == 202
    receipt_id = response.json()["async_passthrough_receipt_id"]
    assert response.json()["status_url"].endswith(f"/api/v1/async-passthrough/{receipt_id}")
    assert poll(alice, receipt_id).status_code == 202
    assert AsyncPassthroughRequest.objects.get(pk=receipt_id).status == "pending"


def test_invalid_input_is_refused_and_nothing_is_stored(alice, httpbin_connection, broker):
    _, token = httpbin_connection
    for body in ({"method": "FETCH"}, {"path": ""}, {"base_url_override": "https://evil.example"}):
        assert create(alice, token, **body).status_code == 400
    assert not AsyncPassthroughRequest.objects.exists()


def test_worker_runs_the_call_and_the_result_is_200(alice, httpbin_connection, broker, worker):
    _, token = httpbin_connection
    receipt_id = create(alice, token, path="/anything/x?a=1").json()["async_passthrough_receipt_id"]
    run_jobs(broker, worker)
    result = poll(alice, receipt_id)
    assert result.status_code == 200
    assert result.json()["status"] == 200
    assert result.json()["response"]["args"] == {"a": "1"}
    call = FunctionCall.objects.get()
    assert call.mode == "async" and call.response_status == 200


def test_xml_data_string_travels_with_its_content_type(alice, httpbin_connection, broker, worker):
    _, token = httpbin_connection
    receipt_id = create(alice, token, method="POST", path="/anything", data="<a>1</a>", request_format="XML").json()[
        "async_passthrough_receipt_id"]
    run_jobs(broker, worker)
    echoed = poll(alice, receipt_id).json()["response"]
    assert echoed["data"] == "<a>1</a>"
    assert echoed["headers"]["Content-Type"] == "application/xml"


def test_multipart_data_string_is_sent_as_is_with_the_callers_content_type(alice, httpbin_connection, broker, worker):
    _, token = httpbin_connection
    body = '--XyZ\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n--XyZ--\r\n'
    receipt_id = create(alice, token, method="POST", path="/anything", data=body, request_format="MULTIPART",
                        headers={"Content-Type": "multipart/form-data; boundary=XyZ"}).json()["async_passthrough_receipt_id"]
    run_jobs(broker, worker)
    assert poll(alice, receipt_id).json()["response"]["form"] == {"note": "hello"}


def test_multipart_data_without_content_type_is_refused(alice, httpbin_connection, broker):
    _, token = httpbin_connection
    assert create(alice, token, method="POST", data="--x--", request_format="MULTIPART").status_code == 400


def test_unreachable_upstream_fails_the_receipt_with_500(alice, broker, worker, settings):
    settings.ASYNC_PASSTHROUGH_MAX_ATTEMPTS = 1  # no retry (they are in test_ratelimit_retries.py)
    integration = make_integration(slug="down", base_url=f"http://127.0.0.1:{free_port()}")
    _, token = make_connection(alice.organization, integration)
    receipt_id = create(alice, token).json()["async_passthrough_receipt_id"]
    run_jobs(broker, worker)
    response = poll(alice, receipt_id)
    assert response.status_code == 500
    assert "could not be reached" in response.json()["error_details"][0]


def test_outbound_timeout_fails_the_receipt(alice, httpbin_connection, broker, worker, settings):
    settings.ASYNC_PASSTHROUGH_OUTBOUND_TIMEOUT = 0.5
    settings.ASYNC_PASSTHROUGH_MAX_ATTEMPTS = 1
    _, token = httpbin_connection
    receipt_id = create(alice, token, path="/delay/3").json()["async_passthrough_receipt_id"]
    run_jobs(broker, worker)
    response = poll(alice, receipt_id)
    assert response.status_code == 500
    assert "in time" in response.json()["error_details"][0]


def test_a_request_past_its_global_deadline_is_failed_without_calling_upstream(alice, httpbin_connection, broker):
    _, token = httpbin_connection
    receipt_id = create(alice, token).json()["async_passthrough_receipt_id"]
    AsyncPassthroughRequest.objects.filter(pk=receipt_id).update(deadline_at=timezone.now() - timedelta(seconds=1))
    async_passthrough.async_passthrough_run(receipt_id)
    receipt = AsyncPassthroughRequest.objects.get(pk=receipt_id)
    assert receipt.status == "failed" and "global deadline" in receipt.error
    assert not FunctionCall.objects.exists()


def test_sweeper_fails_requests_that_outlived_the_deadline_in_the_queue(alice, httpbin_connection, broker):
    _, token = httpbin_connection
    receipt_id = create(alice, token).json()["async_passthrough_receipt_id"]
    AsyncPassthroughRequest.objects.filter(pk=receipt_id).update(deadline_at=timezone.now() - timedelta(seconds=1))
    assert async_passthrough.async_passthrough_sweep()["timed_out"] == 1
    assert poll(alice, receipt_id).status_code == 500


@pytest.mark.parametrize("receipt_id", ["00000000-0000-4000-8000-000000000000", "not-a-uuid"])
def test_unknown_receipt_is_404(alice, receipt_id):
    assert poll(alice, receipt_id).status_code == 404


def test_another_organizations_receipt_is_404(alice, bob, httpbin_connection, broker):
    _, token = httpbin_connection
    receipt_id = create(alice, token).json()["async_passthrough_receipt_id"]
    assert poll(bob, receipt_id).status_code == 404


def test_results_are_gone_after_24_hours(alice, httpbin_connection, broker, worker):
    _, token = httpbin_connection
    receipt_id = create(alice, token).json()["async_passthrough_receipt_id"]
    run_jobs(broker, worker)
    AsyncPassthroughRequest.objects.filter(pk=receipt_id).update(finished_at=timezone.now() - timedelta(hours=24, seconds=1))
    assert poll(alice, receipt_id).status_code == 404
    assert async_passthrough.async_results_purge() == 1
    assert not AsyncPassthroughRequest.objects.exists()


def test_results_younger_than_24_hours_are_kept_by_the_purge(alice, httpbin_connection, broker, worker):
    _, token = httpbin_connection
    create(alice, token)
    run_jobs(broker, worker)
    AsyncPassthroughRequest.objects.update(finished_at=timezone.now() - timedelta(hours=23))
    assert async_passthrough.async_results_purge() == 0


def test_second_retrieval_within_ten_seconds_is_429_with_retry_after(alice, httpbin_connection, broker):
    _, token = httpbin_connection
    receipt_id = create(alice, token).json()["async_passthrough_receipt_id"]
    assert poll(alice, receipt_id).status_code == 202
    refused = poll(alice, receipt_id)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 10


def poll_at(tenant, receipt_id, when):
    """A retrieval as if made at `when` (time moved, not slept)."""
    with mock.patch("passthrough.async_passthrough.timezone.now", return_value=when):
        return poll(tenant, receipt_id)


def test_retry_after_counts_down_and_a_refusal_does_not_restart_the_window(alice, httpbin_connection, broker):
    _, token = httpbin_connection
    receipt_id = create(alice, token).json()["async_passthrough_receipt_id"]
    start = timezone.now()
    assert poll_at(alice, receipt_id, start).status_code == 202
    assert int(poll_at(alice, receipt_id, start + timedelta(seconds=6))["Retry-After"]) <= 4
    assert int(poll_at(alice, receipt_id, start + timedelta(seconds=8.5))["Retry-After"]) == 2


def test_a_retrieval_just_after_the_window_is_allowed_once(alice, httpbin_connection, broker):
    """The window is exact on both cache backends: the database cache keeps expiry times in whole seconds, so an
    entry that expires with the window would refuse a retrieval 10.5 s after the allowed one."""
    _, token = httpbin_connection
    receipt_id = create(alice, token).json()["async_passthrough_receipt_id"]
    start = timezone.now()
    assert poll_at(alice, receipt_id, start).status_code == 202
    assert poll_at(alice, receipt_id, start + timedelta(seconds=10.5)).status_code == 202
    refused = poll_at(alice, receipt_id, start + timedelta(seconds=10.5))
    assert (refused.status_code, refused["Retry-After"]) == (429, "10")


def test_the_retrieval_limit_is_per_receipt(alice, httpbin_connection, broker):
    _, token = httpbin_connection
    first, second = (create(alice, token).json()["async_passthrough_receipt_id"] for _ in range(2))
    assert poll(alice, first).status_code == 202
    assert poll(alice, second).status_code == 202


def test_a_lost_worker_on_an_idempotent_request_is_run_again(alice, httpbin_connection, broker, worker):
    _, token = httpbin_connection
    receipt_id = create(alice, token, method="PUT").json()["async_passthrough_receipt_id"]
    broker.flush_all()  # the message is gone with the dead worker
    AsyncPassthroughRequest.objects.filter(pk=receipt_id).update(
        status="running", attempts=1, claimed_at=timezone.now() - timedelta(minutes=2),
        created_at=timezone.now() - timedelta(minutes=2))
    assert async_passthrough.async_passthrough_sweep()["lost_retried"] == 1
    run_jobs(broker, worker)
    receipt = AsyncPassthroughRequest.objects.get(pk=receipt_id)
    assert receipt.status == "done" and receipt.attempts == 2


def test_a_lost_worker_on_a_post_is_failed_not_repeated(alice, httpbin_connection, broker, worker):
    _, token = httpbin_connection
    receipt_id = create(alice, token, method="POST", data="{}").json()["async_passthrough_receipt_id"]
    broker.flush_all()
    AsyncPassthroughRequest.objects.filter(pk=receipt_id).update(status="running", attempts=1,
                                                                 claimed_at=timezone.now() - timedelta(minutes=2))
    assert async_passthrough.async_passthrough_sweep()["lost_failed"] == 1
    run_jobs(broker, worker)
    response = poll(alice, receipt_id)
    assert response.status_code == 500
    assert "not retried" in response.json()["error_details"][0]
    assert not FunctionCall.objects.exists()


def test_a_broker_outage_at_enqueue_leaves_the_row_pending_for_the_sweeper(alice, httpbin_connection, broker, worker):
    _, token = httpbin_connection
    with mock.patch("passthrough.tasks.run_async_passthrough.send", side_effect=ConnectionError("broker down")):
        response = create(alice, token)
    assert response.status_code == 202
    receipt_id = response.json()["async_passthrough_receipt_id"]
    AsyncPassthroughRequest.objects.filter(pk=receipt_id).update(created_at=timezone.now() - timedelta(minutes=1))
    assert async_passthrough.async_passthrough_sweep()["requeued"] == 1
    run_jobs(broker, worker)
    assert AsyncPassthroughRequest.objects.get(pk=receipt_id).status == "done"


def test_a_duplicate_message_does_not_run_the_call_twice(alice, httpbin_connection, broker, worker):
    _, token = httpbin_connection
    receipt_id = create(alice, token, method="POST", data="{}").json()["async_passthrough_receipt_id"]
    async_passthrough.enqueue(receipt_id)
    run_jobs(broker, worker)
    assert FunctionCall.objects.count() == 1


def signed_by(request, secret):
    expected = base64.urlsafe_b64encode(hmac.new(secret.encode(), request["body"], hashlib.sha256).digest()).decode()
    return hmac.compare_digest(request["headers"]["X-Merge-Webhook-Signature"], expected)


def configure_webhook(organization, url, secret="whsec-test"):
    organization.webhook_url = url
    organization.set_webhook_secret(secret)
    organization.save()


def test_completion_posts_a_signed_webhook(alice, httpbin_connection, broker, worker, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    _, token = httpbin_connection
    with recording_server() as (url, received):
        configure_webhook(alice.organization, url)
        receipt_id = create(alice, token).json()["async_passthrough_receipt_id"]
        run_jobs(broker, worker)
        broker.join("webhooks")
        worker.join()
    assert len(received) == 1
    event = json.loads(received[0]["body"])
    assert event["hook"]["event"] == "async_passthrough.completed"
    assert event["data"] == {"async_passthrough_receipt_id": receipt_id, "status": "DONE"}
    assert signed_by(received[0], "whsec-test")
    assert WebhookDelivery.objects.get().status == "delivered"


def test_webhook_is_retried_with_backoff_and_every_attempt_recorded(alice, settings, db):
    from connections import webhooks

    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    with recording_server(statuses=(500, 503, 200)) as (url, received):
        configure_webhook(alice.organization, url)
        with mock.patch("connections.webhooks._enqueue") as enqueue:
            delivery = webhooks.webhook_send(alice.organization, "test.event", data={"n": 1})
            for _ in range(3):
                webhooks.webhook_deliver(delivery.pk)
    delays = [c.args[1] for c in enqueue.call_args_list if len(c.args) > 1]
    assert len(delays) == 2 and 0 < delays[0] < delays[1]  # exponential backoff after each failure
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.attempts == 3
    assert [a.response_status for a in delivery.attempt_log.all()] == [500, 503, 200]
    assert len({r["body"] for r in received}) == 1


def test_webhook_gives_up_after_the_last_attempt(alice, settings, db):
    from connections import webhooks

    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    with recording_server(statuses=(500,)) as (url, received):
        configure_webhook(alice.organization, url)
        with mock.patch("connections.webhooks._enqueue"):
            delivery = webhooks.webhook_send(alice.organization, "test.event", data={})
            for _ in range(3):
                webhooks.webhook_deliver(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.attempts == 2 and len(received) == 2


def test_webhook_to_a_private_address_is_refused_unless_allowed(alice, httpbin_connection, broker, worker, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    _, token = httpbin_connection
    with recording_server() as (url, received):
        configure_webhook(alice.organization, url)
        create(alice, token)
        run_jobs(broker, worker)
        broker.join("webhooks")
        worker.join()
    assert received == []
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed"
    assert "private or loopback" in delivery.attempt_log.get().error
