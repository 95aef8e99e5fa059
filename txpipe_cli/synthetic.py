"""Synthetic data: customers weighted by state population, and sample orders for `send`."""

from __future__ import annotations

import csv
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

from lambdas.core.reporting import STATE_CODES
from lambdas.core.schema import state_populations
from txpipe_cli.errors import TxpipeError

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


def generate_customers(count: int, seed: int = 42) -> list[list[Any]]:
    """Customers 1..count, each in a state drawn with probability proportional to its population."""
    rng = random.Random(seed)  # noqa: S311 - reproducible synthetic data, not a secret
    states = state_populations()
    codes = [code for code, _, _ in states]
    weights = [population for _, _, population in states]
    drawn = rng.choices(codes, weights=weights, k=count)
    return [[i, state, f"{rng.choice(FIRST)} {rng.choice(LAST)}"] for i, state in enumerate(drawn, start=1)]


def read_customers(path: Path) -> list[list[Any]]:
    """customer_id,state[,name] rows from a CSV with a header; every bad row is reported by line."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = {"customer_id", "state"} - set(reader.fieldnames or [])
            if missing:
                raise TxpipeError(f"{path} lacks column(s) {', '.join(sorted(missing))}",
                                  hint="expected a header: customer_id,state[,name]")
            rows, problems, seen = [], [], set()
            for row in reader:
                line = reader.line_num
                raw_id, state = (row.get("customer_id") or "").strip(), (row.get("state") or "").strip()
                if not (raw_id.isascii() and raw_id.isdigit()) or not 1 <= int(raw_id) <= 2**63 - 1:
                    problems.append(f"line {line}: customer_id {raw_id!r} is not an integer from 1 to 2^63-1")
                elif state not in STATE_CODES:
                    problems.append(f"line {line}: state {state!r} is not a USPS state code")
                elif int(raw_id) in seen:
                    problems.append(f"line {line}: customer_id {raw_id} appears twice")
                else:
                    seen.add(int(raw_id))
                    rows.append([int(raw_id), state, (row.get("name") or "").strip() or None])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TxpipeError(f"cannot read {path}: {exc}") from None
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise TxpipeError(f"{path}: {'; '.join(problems[:5])}{more}", hint="nothing was loaded")
    return rows


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
