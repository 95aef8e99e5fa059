"""Loading customers the one way txpipe does (lambdas/core/customers.py, real OLTP database): `txpipe seed`'s
rows staged a batch at a time under a load id, then committed all or nothing, or aborted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lambdas.core.customers import abort_load, add_rows, commit_load
from tests.integration.helpers import query
from txpipe_cli.synthetic import iter_csv_customers


@pytest.fixture
def oltp(clean: Any) -> Any:
    conn = clean.connect("oltp")
    yield conn
    conn.close()


def customers(clean: Any) -> list[tuple[Any, ...]]:
    return query(clean, "oltp", "SELECT customer_id, state, name FROM customers ORDER BY customer_id")


def staged(clean: Any, load_id: str) -> int:
    return query(clean, "oltp", "SELECT count(*) FROM customers_load WHERE load_id = %s", (load_id,))[0][0]


def load(oltp: Any, load_id: str, *batches: list[list[Any]], replace: bool = False) -> dict[str, Any]:
    for index, rows in enumerate(batches):
        add_rows(oltp, load_id, rows, first=index == 0)
    return commit_load(oltp, load_id, replace=replace)


def test_a_load_in_batches_says_what_it_changed(clean: Any, oltp: Any) -> None:
    """Two batches commit as one load (new customers); loading it again changes nothing; a new name is an
    update; the staged rows are gone after each commit."""
    first = [[1, "TX", "Ann"], [2, "CA", None]]
    assert load(oltp, "a", first, [[3, "NY", "Cy"]]) == {"loaded": 3, "new": 3, "updated": 0, "moved": 0}
    assert customers(clean) == [(1, "TX", "Ann"), (2, "CA", None), (3, "NY", "Cy")]
    assert load(oltp, "b", first) == {"loaded": 2, "new": 0, "updated": 0, "moved": 0}
    assert load(oltp, "c", [[2, "CA", "Bo"], [4, "WY", None]]) == {"loaded": 2, "new": 1, "updated": 1, "moved": 0}
    assert staged(clean, "a") == staged(clean, "b") == staged(clean, "c") == 0


def test_moving_a_customer_needs_replace(clean: Any, oltp: Any) -> None:
    """A load that would move a customer to another state is refused whole, naming it, unless replace is given."""
    load(oltp, "a", [[1, "TX", "Ann"], [2, "CA", None]])
    with pytest.raises(ValueError, match=r"1 existing customer would move to another state \(e\.g\. 1 TX->OK\)"):
        load(oltp, "b", [[1, "OK", "Ann"], [5, "WY", None]])
    assert customers(clean) == [(1, "TX", "Ann"), (2, "CA", None)] and staged(clean, "b") == 0
    assert load(oltp, "c", [[1, "OK", "Ann"]], replace=True) == {"loaded": 1, "new": 0, "updated": 1, "moved": 1}
    assert customers(clean)[0] == (1, "OK", "Ann")


@pytest.mark.parametrize("rows", ["1,CA\n2,TX\n1,NY\n", "7,CA\n07,TX\n"], ids=["same", "leading-zero"])
def test_a_customer_id_given_twice_refuses_the_load(clean: Any, oltp: Any, tmp_path: Path, rows: str) -> None:
    """A CSV naming one customer_id twice (also as 07 and 7) loads nothing: the load says which id."""
    path = tmp_path / "customers.csv"
    path.write_text("customer_id,state\n" + rows)
    with pytest.raises(ValueError, match=r"customer_id \d+ appears twice in the input; nothing was loaded"):
        add_rows(oltp, "a", list(iter_csv_customers(path)), first=True)
    assert customers(clean) == [] and staged(clean, "a") == 0


def test_an_aborted_or_abandoned_load_leaves_nothing(clean: Any, oltp: Any) -> None:
    """abort_load drops what was staged; a load started again under the same id starts empty (first=True)."""
    add_rows(oltp, "a", [[1, "TX", None]], first=True)
    abort_load(oltp, "a")
    assert staged(clean, "a") == 0
    add_rows(oltp, "b", [[1, "TX", None]], first=True)  # abandoned: never committed nor aborted
    assert load(oltp, "b", [[2, "CA", None]]) == {"loaded": 1, "new": 1, "updated": 0, "moved": 0}
    assert customers(clean) == [(2, "CA", None)]
