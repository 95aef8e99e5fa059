"""PgQueue against a real PostgreSQL: SQS semantics on a table."""

from __future__ import annotations

import threading
import time

import pytest

from lambdas.core.queue import Message, PgQueue, QueueError, QueueStats


@pytest.fixture
def make_queue(clean):
    """Builds PgQueues on the test queue database and closes their connections afterwards."""
    made: list[PgQueue] = []

    def make(**kwargs) -> PgQueue:
        queue = PgQueue.from_endpoint(clean.endpoints["queue"], "orders", **kwargs)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        queue.close()


def stored_rows(databases) -> list[tuple[str, str]]:
    conn = databases.connect("queue", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT queue, body FROM queue_messages ORDER BY id")
            return cur.fetchall()
    finally:
        conn.close()


def test_send_batch_then_receive_returns_bodies_in_order(make_queue):
    """A batch sent is received whole, in send order, each with receive_count 1."""
    queue = make_queue(visibility_timeout=30)
    bodies = [f"body-{i}" for i in range(7)]
    queue.send_batch(bodies)
    messages = queue.receive(10)
    assert [m.body for m in messages] == bodies
    assert all(isinstance(m, Message) for m in messages)
    assert [m.receive_count for m in messages] == [1] * 7
    assert len({m.message_id for m in messages}) == 7
    assert len({m.receipt_handle for m in messages}) == 7
    assert queue.receive(10) == []


def test_receive_respects_max_messages(make_queue):
    """receive(n) never returns more than n messages; the rest stay visible for the next call."""
    queue = make_queue(visibility_timeout=30)
    queue.send_batch([str(i) for i in range(5)])
    first = queue.receive(2)
    assert [m.body for m in first] == ["0", "1"]
    assert [m.body for m in queue.receive(10)] == ["2", "3", "4"]


def test_received_message_invisible_until_visibility_timeout(make_queue):
    """A received message is hidden until its visibility timeout passes, then returns with receive_count 2."""
    queue = make_queue(visibility_timeout=0.2)
    queue.send_batch(["hello"])
    first = queue.receive(10)
    assert [(m.body, m.receive_count) for m in first] == [("hello", 1)]
    assert queue.receive(10) == []
    time.sleep(0.3)
    second = queue.receive(10)
    assert [(m.body, m.receive_count) for m in second] == [("hello", 2)]
    assert second[0].message_id == first[0].message_id
    assert second[0].receipt_handle != first[0].receipt_handle


def test_delete_removes_message(make_queue, clean):
    """Deleting by receipt handle removes the message for good, even after the visibility timeout."""
    queue = make_queue(visibility_timeout=0.2)
    queue.send_batch(["a", "b"])
    messages = queue.receive(10)
    queue.delete([messages[0].receipt_handle])
    time.sleep(0.3)
    again = queue.receive(10)
    assert [m.body for m in again] == ["b"]
    assert [body for _, body in stored_rows(clean)] == ["b"]


def test_delete_with_stale_receipt_does_not_remove_redelivered_message(make_queue):
    """A receipt handle from an earlier receive no longer deletes the message once it was received again."""
    queue = make_queue(visibility_timeout=0.2)
    queue.send_batch(["x"])
    old = queue.receive(1)[0]
    time.sleep(0.3)
    new = queue.receive(1)[0]
    queue.delete([old.receipt_handle])
    assert queue.stats() == QueueStats(visible=0, in_flight=1, dead_letters=0)
    queue.delete([new.receipt_handle])
    assert queue.stats() == QueueStats(visible=0, in_flight=0, dead_letters=0)


def test_message_redriven_to_dlq_after_max_receive_count(make_queue, clean):
    """After max_receive_count receives a message moves to the DLQ and is never delivered again."""
    queue = make_queue(visibility_timeout=0.2, max_receive_count=2)
    queue.send_batch(["poison", "good"])
    counts = []
    for _ in range(2):
        got = queue.receive(10)
        counts.append(sorted((m.body, m.receive_count) for m in got))
        # "good" is processed and deleted the first time; "poison" never is
        queue.delete([m.receipt_handle for m in got if m.body == "good"])
        time.sleep(0.3)
    assert counts == [[("good", 1), ("poison", 1)], [("poison", 2)]]
    assert queue.receive(10) == []
    assert queue.stats() == QueueStats(visible=0, in_flight=0, dead_letters=1)
    time.sleep(0.3)
    assert queue.receive(10) == []
    assert stored_rows(clean) == [("orders-dlq", "poison")]


def test_dlq_can_be_read_as_its_own_queue(make_queue, clean):
    """The dead-letter queue is a queue named <name>-dlq holding the original body and its receive count."""
    queue = make_queue(visibility_timeout=0.2, max_receive_count=1)
    queue.send_batch(["bad"])
    assert len(queue.receive(1)) == 1
    time.sleep(0.3)
    assert queue.receive(1) == []
    dlq = PgQueue.from_endpoint(clean.endpoints["queue"], queue.dlq_name, visibility_timeout=30)
    try:
        dead = dlq.receive(10)
    finally:
        dlq.close()
    assert queue.dlq_name == "orders-dlq"
    assert [(m.body, m.receive_count) for m in dead] == [("bad", 2)]  # one receive in each queue


def test_concurrent_receivers_get_disjoint_messages(make_queue):
    """Two threads polling 200 messages concurrently receive disjoint sets that together cover all 200."""
    queue = make_queue(visibility_timeout=30)
    bodies = [f"m{i}" for i in range(200)]
    queue.send_batch(bodies)
    received: list[list[str]] = [[], []]
    errors: list[BaseException] = []
    start = threading.Barrier(2)
    lock = threading.Lock()
    total = [0]

    def poll(slot: int) -> None:
        try:
            queue.stats()  # open this thread's connection before the race starts
            start.wait(timeout=5)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                got = queue.receive(7)
                received[slot].extend(m.body for m in got)
                with lock:
                    total[0] += len(got)
                    if total[0] >= 200:
                        return
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            queue.close()

    threads = [threading.Thread(target=poll, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=15)
    assert not errors
    first, second = set(received[0]), set(received[1])
    assert len(received[0]) == len(first) and len(received[1]) == len(second)
    assert first.isdisjoint(second)
    assert first | second == set(bodies)
    assert first and second, "both pollers should have received something"


def test_stats_counts_visible_and_in_flight(make_queue):
    """stats() counts visible and in-flight messages separately, and in-flight ones become visible again."""
    queue = make_queue(visibility_timeout=0.2)
    assert queue.stats() == QueueStats(0, 0, 0)
    queue.send_batch([str(i) for i in range(5)])
    assert queue.stats() == QueueStats(visible=5, in_flight=0, dead_letters=0)
    queue.receive(3)
    assert queue.stats() == QueueStats(visible=2, in_flight=3, dead_letters=0)
    time.sleep(0.3)
    assert queue.stats() == QueueStats(visible=5, in_flight=0, dead_letters=0)


def test_send_batch_is_all_or_nothing(make_queue, clean):
    """A batch containing a body PostgreSQL refuses (NUL byte) raises QueueError and stores no message at all."""
    queue = make_queue()
    with pytest.raises(QueueError):
        queue.send_batch(["fine-1", "bad\x00body", "fine-2"])
    assert stored_rows(clean) == []
    assert queue.stats() == QueueStats(0, 0, 0)
    queue.send_batch(["after"])  # the queue still works after the refusal
    assert [m.body for m in queue.receive(10)] == ["after"]


def test_send_empty_batch_is_a_no_op(make_queue, clean):
    """Sending an empty list stores nothing and does not fail."""
    queue = make_queue()
    queue.send_batch([])
    assert stored_rows(clean) == []


def test_queues_with_different_names_are_independent(make_queue, clean):
    """Messages sent to one named queue are not received from another on the same table."""
    orders = make_queue()
    other = PgQueue.from_endpoint(clean.endpoints["queue"], "other")
    try:
        other.send_batch(["for-other"])
        orders.send_batch(["for-orders"])
        assert [m.body for m in orders.receive(10)] == ["for-orders"]
        assert [m.body for m in other.receive(10)] == ["for-other"]
    finally:
        other.close()


class SlowPoller(PgQueue):
    """A poller that is descheduled for a moment between the redrive and the claim statements."""

    def _redrive_exhausted(self, cur) -> None:
        super()._redrive_exhausted(cur)
        time.sleep(0.3)


def test_exhausted_message_never_delivered_beyond_max_receive_count(clean):
    """A message already received max_receive_count times is never delivered again, however the poller is timed."""
    queue = SlowPoller.from_endpoint(clean.endpoints["queue"], "orders", visibility_timeout=0.2, max_receive_count=1)
    try:
        queue.send_batch(["poison"])
        assert [m.receive_count for m in queue.receive(1)] == [1]
        # the redrive runs while the message is still in flight; its timeout ends before the claim
        late = queue.receive(1)
        assert late == [], f"delivered a message with receive_count {late[0].receive_count} > max_receive_count 1"
        time.sleep(0.3)
        assert queue.receive(1) == []
        assert queue.stats().dead_letters == 1
    finally:
        queue.close()


def test_dead_letters_listed_with_reasons_redriven_and_purged(make_queue, clean):
    """The operator's side: dead letters carry a reason and age; redrive puts them back fresh; purge empties."""
    queue = make_queue(visibility_timeout=30, max_receive_count=1)
    queue.send_batch(["exhausted", "refused", "fine"])
    got = {m.body: m for m in queue.receive(10)}
    queue.dead_letter(got["refused"], "not a valid order message: x")
    queue.change_visibility([(got["exhausted"].receipt_handle, 0)])
    queue.delete([got["fine"].receipt_handle])
    assert queue.receive(10) == []  # the exhausted one is redriven by this receive, as SQS does
    dead = {d.body: d for d in queue.list_dead_letters(10)}
    assert dead["refused"].reason == "not a valid order message: x"
    assert dead["exhausted"].reason == "received 1 times without being stored (maxReceiveCount)"
    assert all(d.dead_lettered_at is not None and d.receive_count == 1 for d in dead.values())
    assert queue.stats() == QueueStats(visible=0, in_flight=0, dead_letters=2)

    assert queue.redrive() == {"moved": 2, "status": "COMPLETED"}
    assert queue.stats() == QueueStats(visible=2, in_flight=0, dead_letters=0)
    assert sorted((m.body, m.receive_count) for m in queue.receive(10)) == [("exhausted", 1), ("refused", 1)]

    queue.send_batch(["again"])
    [again] = queue.receive(10)
    queue.dead_letter(again, "r")
    assert queue.purge_dead_letters() == 1
    assert queue.list_dead_letters(10) == []


def test_stale_or_foreign_receipts_touch_nothing(make_queue, clean):
    """A receipt from an earlier delivery, or one that is not ours, changes and dead-letters nothing."""
    queue = make_queue(visibility_timeout=0.1)
    queue.send_batch(["m"])
    [first] = queue.receive(1)
    time.sleep(0.2)
    [second] = queue.receive(1)
    queue.dead_letter(first, "stale")
    queue.change_visibility([(first.receipt_handle, 100), ("AQEB-not-ours", 100)])
    queue.delete(["rh-1"])
    assert queue.stats() == QueueStats(visible=0, in_flight=1, dead_letters=0)
    queue.dead_letter(second, "current")
    assert [d.reason for d in queue.list_dead_letters(5)] == ["current"]
