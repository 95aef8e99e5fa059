"""A full disk under the local PostgreSQL, for real: its data directory moved onto a small tmpfs, the tmpfs
filled. `status` says "disk full" and exits 1, the API answers 503 for what it cannot queue, and once space
is freed `txpipe deploy` brings it back and every accepted order is stored (README, "When an order cannot be
stored"). Needs root and a tmpfs mount; skipped, with the reason, where the machine allows neither."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.disk import fill, move_postgres_to_tmpfs, release_tmpfs
from tests.support.local_cli import Cli, local_home, post, wait_for

TMPFS_MIB = 256
BATCH = 100  # orders per request


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, Path]]:
    """A deployment whose PostgreSQL files (data directory and server log) sit on a TMPFS_MIB tmpfs."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs under the PostgreSQL data directory")
    mounted: Path | None = None
    try:
        with local_home(tmp_path_factory, "e2e-disk") as cli:
            cli.json("seed", "--generate", "50")
            moved = move_postgres_to_tmpfs(cli.state, TMPFS_MIB, tmp_path_factory.mktemp("pg-files"))
            cli.json("deploy")  # starts PostgreSQL again: on the small disk, or on its own if it could not move
            if isinstance(moved, str):
                pytest.skip(moved)
            mounted = moved
            yield cli, moved
    finally:
        if mounted is not None:  # after the destroy (local_home) stopped the server
            release_tmpfs(mounted)


def orders(tag: str, n: int) -> bytes:
    return json.dumps([{"customer_id": 1 + i % 50, "type": "veggie", "qty": 1, "retail_price": 11.5,
                        "order_id": f"disk-{tag}-{i}"} for i in range(n)]).encode()


def stored(cli: Cli, ids: list[str]) -> int:
    return cli.sql("oltp", "SELECT count(*) FROM orders WHERE order_id = ANY(%s)", (ids,))[0][0]


def test_a_full_disk_is_named_refused_at_the_door_and_recovered_without_loss(
        small_disk: tuple[Cli, Path]) -> None:
    cli, root = small_disk
    healthy = cli.json("status")
    disk = healthy["disk"]["filesystems"]["postgres data"]
    assert disk["state"] == "ok" and disk["size_bytes"] == TMPFS_MIB * 1024 * 1024, disk
    accepted: list[str] = []
    for n in range(3):
        code, body = post(cli.state, orders(f"before-{n}", BATCH))
        assert code == 202, body
        accepted += body["order_ids"]
    wait_for(lambda: stored(cli, accepted) == len(accepted), what="the orders sent before the disk filled")

    filled = fill(root)
    full = cli.json("status", code=1)
    problem = next(p for p in full["problems"] if p.startswith("disk full"))
    assert problem.startswith(f"disk full: postgres data {root}/data has 0 MiB free of {TMPFS_MIB} MiB"), problem
    text = cli("status", code=1)
    assert "disk full" in text.stderr and f"txpipe deploy once space is freed on {root}/data" in text.stderr

    refused, started = 0, time.monotonic()
    for n in range(200):  # PostgreSQL fills the pages and WAL segment it has, then cannot write
        code, body = post(cli.state, orders(f"full-{n}", BATCH))
        if code == 202:
            accepted += body["order_ids"]
        else:
            assert code == 503, body
            refused += 1
            if refused == 3:
                break
    assert refused == 3, "the API never refused an order with the disk full"
    print(f"\ntmpfs {TMPFS_MIB} MiB filled with {filled / 2**20:.0f} MiB more; {len(accepted)} orders accepted, "
          f"then 503 for {refused} requests in {time.monotonic() - started:.1f} s; status: {problem!r}")
    print("server log: " + (full["disk"]["postgres_reported"] or "(nothing: the log is on the full disk too)"))

    (root / "filler").unlink()
    deployed = cli.json("deploy")
    print(f"after freeing space, deploy: {deployed['actions']}")
    started = time.monotonic()
    wait_for(lambda: stored(cli, accepted) == len(accepted), timeout=240,
             what=f"all {len(accepted)} accepted orders stored")
    print(f"all {len(accepted)} accepted orders stored {time.monotonic() - started:.1f} s after the deploy")
    wait_for(lambda: cli.json("status")["pipeline"]["queue"] == {"visible": 0, "in_flight": 0, "dead_letters": 0},
             what="an empty queue and no dead letter")
    assert cli.json("status")["disk"]["filesystems"]["postgres data"]["state"] == "ok"
    code, body = post(cli.state, orders("after", BATCH))
    assert code == 202, body
