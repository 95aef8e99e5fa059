"""Synthetic customers and orders (txpipe_cli/synthetic.py)."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from lambdas.core.orders import PIZZA_TYPES, parse_json, validate_items
from lambdas.core.reporting import STATE_CODES
from lambdas.core.schema import state_populations
from txpipe_cli.errors import TxpipeError
from txpipe_cli.synthetic import GENERATE_CHUNK, MENU, generate_orders, iter_csv_customers, iter_customers


def generate_customers(count: int, seed: int = 42) -> list[list[object]]:
    return list(iter_customers(count, seed))


def read_customers(path: Path) -> list[list[object]]:
    return list(iter_csv_customers(path))


@pytest.fixture(scope="module")
def fifty_thousand() -> list[list[object]]:
    return generate_customers(50_000)


# --- generate_customers ---------------------------------------------------------------------------


def test_generate_customers_is_deterministic_per_seed() -> None:
    """The same seed gives the same customers; a different seed gives different ones."""
    assert generate_customers(500, seed=3) == generate_customers(500, seed=3)
    assert generate_customers(500, seed=3) != generate_customers(500, seed=4)


def test_generate_customers_ids_and_shape(fifty_thousand: list[list[object]]) -> None:
    """Customers are numbered 1..N and each row is [id, state code, non-empty name]."""
    assert [row[0] for row in fifty_thousand] == list(range(1, 50_001))
    assert all(len(row) == 3 and isinstance(row[2], str) and row[2].strip() for row in fifty_thousand)


def test_generate_customers_states_are_valid(fifty_thousand: list[list[object]]) -> None:
    """Every state is one of the 51 USPS codes, and with 50,000 customers every state appears."""
    states = {row[1] for row in fifty_thousand}
    assert len(STATE_CODES) == 51
    assert states <= STATE_CODES
    assert states == STATE_CODES


def test_generate_customers_small_counts() -> None:
    """Zero customers gives an empty list; one customer has id 1."""
    assert generate_customers(0) == []
    [only] = generate_customers(1)
    assert only[0] == 1 and only[1] in STATE_CODES


@pytest.mark.parametrize("state", ["CA", "TX", "FL", "NY"])
def test_generate_customers_follow_population(fifty_thousand: list[list[object]], state: str) -> None:
    """With 50,000 customers a big state's share is within 10% (relative) of its population share."""
    populations = {code: population for code, _, population in state_populations()}
    expected = populations[state] / sum(populations.values())
    share = Counter(row[1] for row in fifty_thousand)[state] / len(fifty_thousand)
    assert share == pytest.approx(expected, rel=0.10)


# --- read_customers -------------------------------------------------------------------------------


def write_csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "customers.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_read_customers_good_file(tmp_path: Path) -> None:
    """A good CSV yields [id, state, name-or-None] rows, trimming spaces."""
    path = write_csv(tmp_path, "customer_id,state,name\n1,CA,Ann Lee\n2, TX ,\n 3 ,DC,  Bo  \n")
    assert read_customers(path) == [[1, "CA", "Ann Lee"], [2, "TX", None], [3, "DC", "Bo"]]


def test_read_customers_name_column_optional(tmp_path: Path) -> None:
    """customer_id,state alone is enough; column order does not matter."""
    path = write_csv(tmp_path, "state,customer_id\nWY,9223372036854775807\n")
    assert read_customers(path) == [[2**63 - 1, "WY", None]]


def test_read_customers_header_only(tmp_path: Path) -> None:
    """A header without rows yields no customers."""
    assert read_customers(write_csv(tmp_path, "customer_id,state\n")) == []


def test_read_customers_round_trips_generated_customers(tmp_path: Path) -> None:
    """Generated customers written as CSV read back identically."""
    customers = generate_customers(200, seed=9)
    lines = ["customer_id,state,name"] + [f"{i},{s},{n}" for i, s, n in customers]
    assert read_customers(write_csv(tmp_path, "\n".join(lines) + "\n")) == customers


@pytest.mark.parametrize(
    ("rows", "line", "needle"),
    [
        ("1,CA\n2,XX\n", 3, "state 'XX'"),
        ("1,C A\n", 2, "state 'C A'"),
        ("1,\n", 2, "state ''"),
        ("1,CA\nabc,TX\n", 3, "customer_id 'abc'"),
        ("1.0,CA\n", 2, "customer_id '1.0'"),
        ("-4,CA\n", 2, "customer_id '-4'"),
        ("0,CA\n", 2, "customer_id '0'"),
        ("9223372036854775808,CA\n", 2, "customer_id '9223372036854775808'"),
        (",CA\n", 2, "customer_id ''"),
        pytest.param(
            "\u00b2,CA\n", 2, "customer_id", id="superscript-digit",
        ),
    ],
)
def test_read_customers_reports_bad_rows_by_line(tmp_path: Path, rows: str, line: int, needle: str) -> None:
    """A bad state or a non-integer or out-of-range id raises TxpipeError naming the line (an id given twice
    is the load's to refuse: tests/integration/test_customers.py)."""
    path = write_csv(tmp_path, "customer_id,state\n" + rows)
    with pytest.raises(TxpipeError) as info:
        read_customers(path)
    assert f"line {line}:" in info.value.reason
    assert needle in info.value.reason
    assert info.value.hint == "nothing was loaded"


def test_read_customers_lists_several_problems(tmp_path: Path) -> None:
    """All bad lines are reported (the first five, then a count of the rest)."""
    rows = "".join(f"{i},XX\n" for i in range(1, 9))
    with pytest.raises(TxpipeError) as info:
        read_customers(write_csv(tmp_path, "customer_id,state\n" + rows))
    reason = info.value.reason
    assert all(f"line {n}:" in reason for n in range(2, 7))
    assert "line 7:" not in reason
    assert "(and 3 more)" in reason


@pytest.mark.parametrize("body", ["customer_id,state\n1,CA\n\n2,XX\n",
                                  'customer_id,state,name\n1,CA,"Ann\nLee"\n2,XX,Bo\n'],
                         ids=["blank-line", "multi-line-name"])
def test_read_customers_line_numbers_are_file_lines(tmp_path: Path, body: str) -> None:
    """The line reported is the file's line (counting blank lines and multi-line quoted names)."""
    with pytest.raises(TxpipeError, match="line 4:"):
        read_customers(write_csv(tmp_path, body))


@pytest.mark.parametrize(
    ("text", "missing"),
    [("id,state\n1,CA\n", "customer_id"), ("customer_id,name\n1,Ann\n", "state"),
     ("name\nAnn\n", "customer_id, state"), ("", "customer_id, state")],
)
def test_read_customers_missing_column(tmp_path: Path, text: str, missing: str) -> None:
    """A CSV lacking customer_id or state raises TxpipeError naming the missing column(s) and the header."""
    with pytest.raises(TxpipeError) as info:
        read_customers(write_csv(tmp_path, text))
    assert f"lacks {'columns' if ',' in missing else 'column'} {missing}" in info.value.reason
    assert info.value.hint and "customer_id,state" in info.value.hint


def test_read_customers_unreadable_file(tmp_path: Path) -> None:
    """A missing file or non-UTF-8 bytes raise TxpipeError, not OSError/UnicodeDecodeError."""
    with pytest.raises(TxpipeError, match="cannot read"):
        read_customers(tmp_path / "absent.csv")
    path = tmp_path / "latin.csv"
    path.write_bytes(b"customer_id,state,name\n1,CA,Jos\xe9\n")
    with pytest.raises(TxpipeError, match="cannot read"):
        read_customers(path)


# --- generate_orders ------------------------------------------------------------------------------


def test_generate_orders_is_deterministic_per_seed() -> None:
    """The same seed gives the same orders; another seed different ones."""
    assert generate_orders(300, 50, seed=1) == generate_orders(300, 50, seed=1)
    assert generate_orders(300, 50, seed=1) != generate_orders(300, 50, seed=2)


def test_generate_orders_use_the_menu() -> None:
    """Every order has a menu type, that type's price, a customer in 1..N and a small quantity."""
    orders = generate_orders(2000, 25)
    assert len(orders) == 2000
    assert set(MENU) == set(PIZZA_TYPES)
    assert {o["type"] for o in orders} == set(PIZZA_TYPES)
    assert all(1 <= o["customer_id"] <= 25 for o in orders)
    assert all(o["qty"] in (1, 2, 3, 4, 5, 10) for o in orders)
    assert all(Decimal(str(o["retail_price"])) == MENU[o["type"]][0] for o in orders)
    assert set(orders[0]) == {"customer_id", "type", "qty", "retail_price"}


def test_generate_orders_pass_validation() -> None:
    """Generated orders, serialized as `txpipe sample` writes them, pass the API's validate_items."""
    orders = generate_orders(500, 5000)
    body = json.dumps(orders, indent=1).encode()
    validated = validate_items(parse_json(body))
    assert len(validated) == 500
    assert [(v.customer_id, v.type, v.qty) for v in validated] == [
        (o["customer_id"], o["type"], o["qty"]) for o in orders]
    assert all(v.retail_price == MENU[v.type][0] for v in validated)


def test_state_codes_are_read_in_any_case(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text("customer_id,state\n1,ca\n2, Tx \n")
    assert read_customers(path) == [[1, "CA", None], [2, "TX", None]]


def test_customers_are_generated_a_chunk_at_a_time_with_the_same_result() -> None:
    """iter_customers draws in chunks (bounded memory); ids run on across chunks, the seed fixes them all."""
    rows = generate_customers(GENERATE_CHUNK + 3, seed=5)
    assert [r[0] for r in rows] == list(range(1, GENERATE_CHUNK + 4))
    assert rows[:GENERATE_CHUNK] == generate_customers(GENERATE_CHUNK, seed=5)


def test_generating_any_number_of_customers_keeps_memory_bounded() -> None:
    """300,000 customers drawn and dropped one by one: traced memory stays under a few MB."""
    import tracemalloc

    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_customers(300_000, seed=1))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 300_000 and peak < 8 * 1024 * 1024
