"""SQS queues of the ecs provider, against moto in-process, and botocore's Stubber for AWS's error responses."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber

from mayfly.core.errors import (
    AccessDenied,
    CredentialsMissing,
    InvalidInput,
    InvalidSettings,
    NotFound,
    Throttled,
    Unavailable,
)
from mayfly.core.queues import Message
from mayfly.providers.ecs.aws import Clients
from mayfly.providers.ecs.settings import EcsSettings
from mayfly.providers.ecs.sqs import MAX_BODY_BYTES, SqsQueue, SqsQueueSet

REGION = "eu-west-1"
URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/mayfly-tasks"


def count_calls(queue: SqsQueue, operation: str) -> list[dict[str, Any]]:
    """Record the parameters of every ``operation`` call the queue's client makes (a botocore event hook)."""
    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(params)

    queue.clients("sqs").meta.events.register(f"provide-client-params.sqs.{operation}", record)
    return calls


@pytest.fixture
def tasks(sqs_queues: SqsQueueSet) -> SqsQueue:
    return sqs_queues.get("tasks")


@pytest.fixture
def stubbed(fake_aws_env: None) -> Iterator[tuple[SqsQueue, Stubber]]:
    """A queue whose client answers with recorded AWS responses (no moto, no network)."""
    queue = SqsQueue(URL, Clients(REGION))
    with Stubber(queue.clients("sqs")) as stubber:
        yield queue, stubber
        stubber.assert_no_pending_responses()


# ---------------------------------------------------------------- moto: the queue semantics


def test_send_receive_ack(tasks: SqsQueue) -> None:
    message_id = tasks.send('{"n": 7}')
    assert tasks.depth() == 1
    (m,) = tasks.receive(1, lease=30)
    assert (m.id, m.body, m.deliveries) == (message_id, '{"n": 7}', 1)
    assert tasks.receive(1) == []
    assert tasks.depth() == 1  # leased messages still count
    assert tasks.ack(m) is True
    assert tasks.depth() == 0


def test_lease_expiry_redelivers_and_the_old_receipt_is_stale(tasks: SqsQueue) -> None:
    tasks.send("a")
    (first,) = tasks.receive(1, lease=1)
    assert tasks.receive(1) == []
    time.sleep(1.3)
    (again,) = tasks.receive(1, lease=30)
    assert again.id == first.id
    assert again.deliveries == 2
    assert again.receipt != first.receipt
    # NOTE: moto deletes with any receipt it ever issued (AWS accepts the call without deleting);
    # the queue refuses the superseded receipt itself, so nothing is deleted here.
    assert tasks.ack(first) is False
    assert tasks.extend(first, 10) is False
    assert tasks.depth() == 1
    assert tasks.ack(again) is True
    assert tasks.depth() == 0


def test_extend_keeps_the_message_hidden(tasks: SqsQueue) -> None:
    tasks.send("x")
    (m,) = tasks.receive(1, lease=1)
    assert tasks.extend(m, 5) is True
    time.sleep(1.3)
    assert tasks.receive(1) == []
    assert tasks.ack(m) is True


def test_a_receipt_sqs_never_issued_is_refused(tasks: SqsQueue) -> None:
    tasks.send("x")
    bogus = Message(id="00000000-0000-0000-0000-000000000000", body="x", receipt="not-a-receipt", deliveries=1)
    assert tasks.ack(bogus) is False
    assert tasks.extend(bogus, 10) is False
    assert tasks.depth() == 1


def test_extend_past_twelve_hours_in_flight_reports_the_lease_lost(tasks: SqsQueue) -> None:
    tasks.send("x")
    (m,) = tasks.receive(1, lease=30)
    assert tasks.extend(m, 43200) is False
    with pytest.raises(InvalidInput, match="lease must be between 0 and 43200 seconds on SQS; got 43201"):
        tasks.extend(m, 43201)


def test_send_many_batches_by_ten_and_receive_collects_more_than_ten(tasks: SqsQueue) -> None:
    batches = count_calls(tasks, "SendMessageBatch")
    receives = count_calls(tasks, "ReceiveMessage")
    bodies = [f'{{"i": {i}}}' for i in range(25)]
    ids = tasks.send_many(bodies)
    assert [len(call["Entries"]) for call in batches] == [10, 10, 5]
    assert len(set(ids)) == 25
    got = tasks.receive(25, wait=1, lease=30)
    assert sorted(m.body for m in got) == sorted(bodies)
    assert {m.id: m.body for m in got} == dict(zip(ids, bodies, strict=True))
    assert [call["WaitTimeSeconds"] for call in receives] == [1, 0, 0]
    assert [call["MaxNumberOfMessages"] for call in receives] == [10, 10, 5]
    assert tasks.depth() == 25
    assert tasks.ack_many(got) == [True] * 25
    assert tasks.depth() == 0


@pytest.mark.timeout(20)
def test_a_lease_of_zero_does_not_loop_on_the_same_messages(tasks: SqsQueue) -> None:
    tasks.send_many([str(i) for i in range(12)])
    got = tasks.receive(25, lease=0)  # each message stays visible, so the next call sees the same ones
    assert 10 <= len(got) <= 12
    assert len({m.id for m in got}) == len(got)


def test_send_many_keeps_each_batch_under_the_size_limit(tasks: SqsQueue) -> None:
    batches = count_calls(tasks, "SendMessageBatch")
    bodies = [str(i) * 100 * 1024 for i in range(10)]  # 100 KiB each: two fit in one batch
    tasks.send_many(bodies)
    assert [len(call["Entries"]) for call in batches] == [2, 2, 2, 2, 2]
    assert sorted(m.body for m in tasks.receive(10, lease=30)) == bodies


def test_a_body_over_the_limit_is_refused_and_nothing_is_sent(tasks: SqsQueue) -> None:
    tasks.send("x" * MAX_BODY_BYTES)
    with pytest.raises(InvalidInput, match="message body is 262145 bytes; SQS messages are limited to 262144 bytes"):
        tasks.send("x" * (MAX_BODY_BYTES + 1))
    # The limit counts UTF-8 bytes, not characters.
    with pytest.raises(InvalidInput, match="262146 bytes"):
        tasks.send_many(["ok", "é" * (MAX_BODY_BYTES // 2 + 1)])
    assert tasks.depth() == 1


def test_characters_sqs_refuses_are_caught_before_sending(tasks: SqsQueue) -> None:
    # NOTE: moto stores a NUL byte; AWS refuses the message with InvalidMessageContents.
    with pytest.raises(InvalidInput, match=r"character SQS refuses \('\\x00' at 1\)"):
        tasks.send("a\x00")
    assert tasks.depth() == 0


def test_delay(tasks: SqsQueue) -> None:
    tasks.send("later", delay=1)
    assert tasks.receive(1) == []
    assert tasks.depth() == 1  # delayed messages count
    assert [m.body for m in tasks.receive(1, wait=3)] == ["later"]


def test_delay_and_lease_out_of_range_are_refused(tasks: SqsQueue) -> None:
    with pytest.raises(InvalidInput, match="delay must be between 0 and 900 seconds on SQS; got 901"):
        tasks.send("x", delay=901)
    with pytest.raises(InvalidInput, match="delay must be between 0 and 900 seconds"):
        tasks.send_many(["x"], delay=-1)
    with pytest.raises(InvalidInput, match="lease must be between 0 and 43200 seconds"):
        tasks.receive(1, lease=-1)
    assert tasks.depth() == 0


def test_depth_counts_visible_leased_and_delayed(tasks: SqsQueue) -> None:
    tasks.send_many(["a", "b"])
    tasks.send("c", delay=60)
    assert len(tasks.receive(1, lease=30)) == 1
    assert tasks.depth() == 3


def test_ack_many_reports_stale_receipts(tasks: SqsQueue) -> None:
    tasks.send_many(["a", "b"])
    got = tasks.receive(2, lease=30)
    stale = Message(id=got[0].id, body="a", receipt="not-a-receipt", deliveries=1)
    assert tasks.ack_many([stale, got[1]]) == [False, True]
    assert tasks.ack_many([got[0]]) == [True]
    assert tasks.depth() == 0


def test_receive_of_nothing_makes_no_call(tasks: SqsQueue) -> None:
    receives = count_calls(tasks, "ReceiveMessage")
    assert tasks.receive(0) == []
    assert receives == []


def test_queue_set_from_settings(sqs_queues: SqsQueueSet) -> None:
    urls = {kind: sqs_queues.get(kind).url for kind in ("tasks", "control", "events")}
    settings = EcsSettings(
        region=REGION,
        cluster="mayfly",
        subnets=["subnet-1"],
        execution_role_arn="arn:aws:iam::123456789012:role/exec",
        log_group="/mayfly/tasks",
        bucket="mayfly-test-bucket",
        tasks_queue_url=urls["tasks"],
        control_queue_url=urls["control"],
        events_queue_url=urls["events"],
    )
    queues = SqsQueueSet.from_settings(settings)
    assert [queues.get(kind).name for kind in ("tasks", "control", "events")] == [
        "mayfly-tasks",
        "mayfly-control",
        "mayfly-events",
    ]
    queues.get("events").send("up")
    assert [m.body for m in sqs_queues.get("events").receive(1)] == ["up"]
    with pytest.raises(InvalidInput, match="unknown queue kind 'logs'; an ecs target has tasks, control and events"):
        queues.get("logs")


def test_queue_set_needs_all_three_urls(fake_aws_env: None) -> None:
    with pytest.raises(InvalidSettings, match=r"missing: control, events; unknown: -"):
        SqsQueueSet({"tasks": URL}, Clients(REGION))


# ---------------------------------------------------------------- errors


def test_a_missing_queue_is_not_found(sqs_queues: SqsQueueSet) -> None:
    missing = SqsQueue(sqs_queues.get("tasks").url.replace("mayfly-tasks", "nope"), sqs_queues.clients)
    with pytest.raises(NotFound) as info:
        missing.send("x")
    assert str(info.value) == (
        "sending a message to SQS queue nope: not found "
        "(AWS.SimpleQueueService.NonExistentQueue: The specified queue does not exist.)"
    )


def test_no_credentials(no_aws_credentials: None) -> None:
    queue = SqsQueue(URL, Clients(REGION, endpoint_url="http://127.0.0.1:9"))
    with pytest.raises(CredentialsMissing) as info:
        queue.send("x")
    message = str(info.value)
    assert message.startswith("sending a message to SQS queue mayfly-tasks: no AWS credentials found (")
    assert "\n" not in message


def test_throttled_receive(stubbed: tuple[SqsQueue, Stubber]) -> None:
    queue, stubber = stubbed
    stubber.add_client_error(
        "receive_message", service_error_code="RequestThrottled", service_message="Rate exceeded", http_status_code=403
    )
    with pytest.raises(Throttled) as info:
        queue.receive(1, wait=5)
    assert str(info.value) == "receiving messages from SQS queue mayfly-tasks: throttled by AWS (RequestThrottled)"


def test_access_denied(stubbed: tuple[SqsQueue, Stubber]) -> None:
    queue, stubber = stubbed
    denial = (
        "User: arn:aws:sts::123456789012:assumed-role/mayfly-runner/i-0 is not authorized to perform: "
        "sqs:sendmessage on resource: arn:aws:sqs:eu-west-1:123456789012:mayfly-tasks "
        "because no identity-based policy allows the sqs:sendmessage action"
    )
    stubber.add_client_error(
        "send_message", service_error_code="AccessDenied", service_message=denial, http_status_code=403
    )
    with pytest.raises(AccessDenied) as info:
        queue.send("x")
    assert str(info.value) == f"sending a message to SQS queue mayfly-tasks: access denied (AccessDenied: {denial})"


def test_an_expired_receipt_or_a_message_not_in_flight_is_a_lost_lease(stubbed: tuple[SqsQueue, Stubber]) -> None:
    queue, stubber = stubbed
    m = Message(id="m-1", body="x", receipt="AQEBexpired", deliveries=1)
    stubber.add_client_error(
        "change_message_visibility",
        service_error_code="InvalidParameterValue",
        service_message=(
            "Value AQEBexpired for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired."
        ),
        http_status_code=400,
    )
    stubber.add_client_error(
        "change_message_visibility",
        service_error_code="AWS.SimpleQueueService.MessageNotInflight",
        service_message="Message does not exist or is not available for visibility timeout change.",
        http_status_code=400,
    )
    stubber.add_client_error(
        "delete_message",
        service_error_code="ReceiptHandleIsInvalid",
        service_message='The input receipt handle "AQEBexpired" is not a valid receipt handle.',
        http_status_code=404,
    )
    assert queue.extend(m, 30) is False
    assert queue.extend(m, 30) is False
    assert queue.ack(m) is False


def test_other_parameter_errors_are_not_swallowed(stubbed: tuple[SqsQueue, Stubber]) -> None:
    queue, stubber = stubbed
    stubber.add_client_error(
        "change_message_visibility",
        service_error_code="InvalidParameterValue",
        service_message="Value -1 for parameter VisibilityTimeout is invalid.",
        http_status_code=400,
    )
    with pytest.raises(Unavailable, match="InvalidParameterValue: Value -1 for parameter VisibilityTimeout is invalid"):
        queue.extend(Message(id="m-1", body="x", receipt="AQEB", deliveries=1), 30)


def test_receive_waits_once_and_asks_ten_at_a_time(stubbed: tuple[SqsQueue, Stubber]) -> None:
    queue, stubber = stubbed

    def messages(start: int, n: int) -> dict[str, Any]:
        return {
            "Messages": [
                {
                    "MessageId": f"m-{i}",
                    "ReceiptHandle": f"r-{i}",
                    "Body": str(i),
                    "Attributes": {"ApproximateReceiveCount": "3"},
                }
                for i in range(start, start + n)
            ]
        }

    def params(n: int, wait: int) -> dict[str, Any]:
        return {
            "QueueUrl": URL,
            "MaxNumberOfMessages": n,
            "WaitTimeSeconds": wait,
            "VisibilityTimeout": 3,
            "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
        }

    stubber.add_response("receive_message", messages(0, 10), params(10, 20))
    stubber.add_response("receive_message", messages(10, 10), params(10, 0))
    stubber.add_response("receive_message", messages(20, 2), params(5, 0))
    got = queue.receive(25, wait=30, lease=2.5)
    assert [m.body for m in got] == [str(i) for i in range(22)]
    assert {m.deliveries for m in got} == {3}


def test_send_many_retries_entries_aws_failed_on_its_side(stubbed: tuple[SqsQueue, Stubber]) -> None:
    queue, stubber = stubbed
    entries = [{"Id": str(i), "MessageBody": f"b{i}", "DelaySeconds": 0} for i in range(3)]
    ok = [{"Id": str(i), "MessageId": f"m-{i}", "MD5OfMessageBody": "0" * 32} for i in range(3)]
    stubber.add_response(
        "send_message_batch",
        {
            "Successful": ok[:2],
            "Failed": [{"Id": "2", "SenderFault": False, "Code": "InternalError", "Message": "Try again"}],
        },
        {"QueueUrl": URL, "Entries": entries},
    )
    stubber.add_response(
        "send_message_batch", {"Successful": ok[2:], "Failed": []}, {"QueueUrl": URL, "Entries": entries[2:]}
    )
    assert queue.send_many(["b0", "b1", "b2"]) == ["m-0", "m-1", "m-2"]


def test_send_many_raises_entries_aws_refused(stubbed: tuple[SqsQueue, Stubber]) -> None:
    queue, stubber = stubbed
    stubber.add_response(
        "send_message_batch",
        {
            "Successful": [{"Id": "0", "MessageId": "m-0", "MD5OfMessageBody": "0" * 32}],
            "Failed": [{"Id": "1", "SenderFault": True, "Code": "InvalidParameterValue", "Message": "Bad body"}],
        },
    )
    with pytest.raises(InvalidInput) as info:
        queue.send_many(["b0", "b1"])
    assert str(info.value) == "sending 2 messages to SQS queue mayfly-tasks: 1 failed (InvalidParameterValue: Bad body)"


def test_send_many_still_throttled_after_retries(stubbed: tuple[SqsQueue, Stubber]) -> None:
    queue, stubber = stubbed
    throttled = {"Id": "0", "SenderFault": False, "Code": "RequestThrottled", "Message": "Rate exceeded"}
    for _ in range(3):
        stubber.add_response("send_message_batch", {"Successful": [], "Failed": [throttled]})
    with pytest.raises(Throttled) as info:
        queue.send_many(["b0"])
    assert str(info.value) == "sending 1 message to SQS queue mayfly-tasks: 1 failed (RequestThrottled: Rate exceeded)"
