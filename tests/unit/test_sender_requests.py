"""`txpipe send` requests (txpipe_cli/sender.py): batching, the body limit and --rate pacing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.sender import FakeApi, Sleeps, order, order_file
from txpipe_cli import sender
from txpipe_cli.sender import ApiClient, send

# --- send: the plain path and pacing ---------------------------------------------------------------


def test_send_counts_accepted_orders(client: tuple[ApiClient, FakeApi, Sleeps]) -> None:
    """All-valid orders: everything is sent and accepted over ceil(n/batch) requests with stamped ids."""
    api_client, fake, sleeps = client
    progressed: list[int] = []
    result = send(api_client, order_file([order(i) for i in range(1, 6)]), batch_size=2,
                  progress=progressed.append)
    assert result.to_dict() == {"orders": 5, "sent": 5, "requests": 3, "accepted": 5, "refused": 0,
                                "not_sent": 0, "refusals": [], "interrupted": None}
    assert progressed == [2, 2, 1]
    assert [len(b) for b in fake.bodies] == [2, 2, 1]
    assert all(isinstance(item["order_id"], str) for b in fake.bodies for item in b)
    assert all(path == "/orders" for path, _ in fake.posts)
    assert sleeps == []


def test_requests_stay_under_the_body_limit(client: tuple[ApiClient, FakeApi, Sleeps],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A request is cut before its JSON array would pass the API's body limit, whatever --batch says."""
    import lambdas.core.orders

    api_client, fake, _ = client
    one = len(json.dumps({**order(1), "order_id": "x" * 64}, separators=(",", ":")))
    monkeypatch.setattr(lambdas.core.orders, "MAX_BODY_BYTES", 2 + 3 * (one + 1))
    result = send(api_client, order_file([order(1, order_id=f"{i:064d}") for i in range(7)]), batch_size=500)
    assert result.accepted == 7
    assert [len(b) for b in fake.bodies] == [3, 3, 1]


class FakeClock:
    """A monotonic clock that only moves when told to, and a sleep() that moves it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_rate_paces_requests(client: tuple[ApiClient, FakeApi, Sleeps]) -> None:
    """With rate=4/s and batches of 2, each request after the first waits until 0.5 s of quota has passed."""
    api_client, fake, _ = client
    clock = FakeClock()
    result = send(api_client, order_file([order(i) for i in range(1, 11)]), batch_size=2, rate=4.0,
                  clock=clock.clock, sleep=clock.sleep)
    assert result.accepted == 10
    assert clock.sleeps == pytest.approx([0.5, 0.5, 0.5, 0.5])
    assert clock.now == pytest.approx(1002.0)  # 8 orders before the last request, at 4/s


def test_rate_does_not_sleep_when_behind(client: tuple[ApiClient, FakeApi, Sleeps]) -> None:
    """When requests are slower than the rate, no sleep is added; a faster one only waits the remainder."""
    api_client, _, _ = client
    clock = FakeClock()
    durations = iter([1.0, 0.1, 0.1])  # each post's duration

    class SlowClient:
        def post(self, body: bytes) -> tuple[int, dict[str, Any]]:
            clock.now += next(durations)
            return api_client.post(body)

    orders = order_file([order(i) for i in range(1, 7)])
    result = send(SlowClient(), orders, batch_size=2, rate=4.0,  # type: ignore[arg-type]
                  clock=clock.clock, sleep=clock.sleep)
    assert result.accepted == 6
    # after post 1 (t=1.0): quota 0.5 s already passed -> no sleep; after post 2 (t=1.1): due at 1.0 -> no sleep
    assert clock.sleeps == []
    durations = iter([0.1, 0.1, 0.1])
    clock.now = 0.0
    send(SlowClient(), orders, batch_size=2, rate=4.0,  # type: ignore[arg-type]
         clock=clock.clock, sleep=clock.sleep)
    assert clock.sleeps == pytest.approx([0.4, 0.4])


def test_no_rate_means_no_sleep(client: tuple[ApiClient, FakeApi, Sleeps]) -> None:
    """Without a rate, send never sleeps or consults pacing."""
    api_client, _, _ = client
    clock = FakeClock()
    send(api_client, order_file([order(i) for i in range(1, 7)]), batch_size=1, clock=clock.clock,
         sleep=clock.sleep)
    assert clock.sleeps == []


def test_checking_a_pass_does_not_count_against_the_rate(client: tuple[ApiClient, FakeApi, Sleeps],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Checking each pass takes 5 s here: the requests are still paced, not sent in a burst to catch up."""
    api_client, _, _ = client
    clock = FakeClock()
    real_plan = sender.plan

    def slow_plan(*args: Any, **kwargs: Any) -> Any:
        clock.now += 5
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(sender, "plan", slow_plan)
    result = send(api_client, order_file([order(i) for i in range(1, 5)]), batch_size=2, rate=4.0, repeat=2,
                  clock=clock.clock, sleep=clock.sleep)
    assert result.accepted == 8
    assert clock.sleeps == pytest.approx([0.5, 0.5, 0.5])
