"""Synthetic data: customers weighted by state population, and sample orders for `send`."""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from lambdas.core.reporting import STATE_CODES
from lambdas.core.schema import state_populations
from txpipe_cli.errors import TxpipeError, path_error

MENU = {  # type: (unit price, relative popularity)
    "pepperoni": (Decimal("14.99"), 36),
    "cheese": (Decimal("12.99"), 24),
    "supreme": (Decimal("16.99"), 16),
    "meat lover": (Decimal("17.99"), 14),
    "veggie": (Decimal("13.99"), 10),
}
FIRST = ["Ava", "Ben", "Carla", "Diego", "Emma", "Farah", "Grace", "Hiro", "Isla", "Jamal", "Kira", "Liam",
         "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Victor", "Wen", "Yusuf", "Zoe"]
LAST = ["Smith", "Garcia", "Nguyen", "Johnson", "Patel", "Kim", "Brown", "Lopez", "Chen", "Williams",
        "Okafor", "Miller", "Davis", "Rossi", "Cohen", "Silva", "Ali", "Novak", "Sato", "Jones"]


GENERATE_CHUNK = 10_000  # customers drawn at a time: memory stays bounded whatever the count


def iter_customers(count: int, seed: int = 42) -> Iterator[list[Any]]:
    """Customers 1..count, each in a state drawn with probability proportional to its population,
    drawn a chunk at a time (the same seed always gives the same customers)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible synthetic data, not a secret
    states = state_populations()
    codes = [code for code, _, _ in states]
    weights = [population for _, _, population in states]
    for start in range(1, count + 1, GENERATE_CHUNK):
        drawn = rng.choices(codes, weights=weights, k=min(GENERATE_CHUNK, count - start + 1))
        for offset, state in enumerate(drawn):
            yield [start + offset, state, f"{rng.choice(FIRST)} {rng.choice(LAST)}"]


def iter_csv_customers(path: Path) -> Iterator[list[Any]]:
    """customer_id,state[,name] rows from a CSV with a header, streamed (state codes in any case). Bad rows
    stop it with a TxpipeError naming the first five by line and counting the rest; a customer_id given
    twice is caught by the load itself (which refuses the whole load)."""
    problems: list[str] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = {"customer_id", "state"} - set(reader.fieldnames or [])
            if missing:
                columns = "column" if len(missing) == 1 else "columns"
                raise TxpipeError(f"{path} lacks {columns} {', '.join(sorted(missing))}",
                                  hint="expected a header: customer_id,state[,name]")
            for row in reader:
                line = reader.line_num
                raw_id = (row.get("customer_id") or "").strip()
                state = (row.get("state") or "").strip().upper()
                if not (raw_id.isascii() and raw_id.isdigit()) or not 1 <= int(raw_id) <= 2**63 - 1:
                    problems.append(f"line {line}: customer_id {raw_id!r} is not an integer from 1 to 2^63-1")
                elif state not in STATE_CODES:
                    problems.append(f"line {line}: state {row.get('state')!r} is not a USPS state code")
                elif not problems:  # after a problem, read on only to count the others
                    yield [int(raw_id), state, (row.get("name") or "").strip() or None]
    except OSError as exc:
        raise path_error(exc, "read") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise TxpipeError(f"cannot read {path}: {exc}", hint=f"run: head -3 {path}") from None
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise TxpipeError(f"{path}: {'; '.join(problems[:5])}{more}", hint="nothing was loaded")


def generate_orders(count: int, customers: int, seed: int = 7) -> list[dict[str, Any]]:
    """Orders from customers 1..customers, types by popularity, mostly small quantities."""
    rng = random.Random(seed)  # noqa: S311 - reproducible synthetic data, not a secret
    names = list(MENU)
    weights = [MENU[name][1] for name in names]
    orders = []
    for _ in range(count):
        pizza = rng.choices(names, weights=weights)[0]
        orders.append({"customer_id": rng.randint(1, customers), "type": pizza,
                       "qty": rng.choices([1, 2, 3, 4, 5, 10], weights=[40, 30, 15, 8, 5, 2])[0],
                       "retail_price": float(MENU[pizza][0])})
    return orders
