"""An error as one short line (lambdas/core/reasons.py), the one way the functions and the CLI shorten one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from lambdas.core.reasons import REASON_LIMIT, one_line

ROOT = Path(__file__).resolve().parents[2]


class _Diag:
    message_primary = 'relation "orders" does not exist'


class _DriverError(Exception):
    """What psycopg2 raises: a message of several lines, its first one also in diag.message_primary."""

    diag = _Diag()


def test_the_first_line_is_the_reason() -> None:
    exc = RuntimeError('\n  relation "orders"   does not exist\nLINE 1: SELECT * FROM orders\n              ^\n')
    assert one_line(exc) == 'relation "orders" does not exist'


def test_the_drivers_primary_message_wins() -> None:
    assert one_line(_DriverError("ERROR:  something\nDETAIL: more")) == 'relation "orders" does not exist'


def test_text_and_nothing() -> None:
    assert one_line("connection refused\nIs the server running?") == "connection refused"
    assert one_line(None) == one_line("") == ""


def test_an_exception_without_a_message_is_named_by_its_type() -> None:
    assert one_line(TimeoutError()) == "TimeoutError"


def test_one_limit() -> None:
    assert one_line(ValueError("x" * 10_000)) == "x" * REASON_LIMIT
    assert one_line("y" * 50, limit=10) == "y" * 10


def test_no_module_shortens_an_error_its_own_way() -> None:
    """The shapes the ten copies had (an exception's first line cut at 300, 400 or 500; every line joined and
    cut) are gone from the functions and the CLI: each of them calls one_line."""
    pattern = re.compile(r"str\((?:exc|text|primary or exc)\)[^#]*(?:splitlines\(\)|split\(\)\))[^#]*\[:\d+\]"
                         r"|\{exc\}\"\[:\d+\]|lines\[-1\]\.split\(\)\)\[:\d+\]")
    found = [f"{path.relative_to(ROOT)}:{n}" for folder in ("lambdas", "txpipe_cli")
             for path in sorted((ROOT / folder).rglob("*.py"))
             for n, text in enumerate(path.read_text().splitlines(), 1) if pattern.search(text)]
    assert found == []


def test_standard_library_only() -> None:
    """The module loads in a Python that has nothing but the standard library on its path (a Lambda function
    and the CLI's fast start both import it)."""
    code = ("import sys; sys.path[:] = [p for p in sys.path if 'site-packages' not in p]; "
            "import importlib.util as u; s = u.spec_from_file_location('r', sys.argv[1]); m = u.module_from_spec(s); "
            "s.loader.exec_module(m); print(m.one_line(ValueError('a\\nb')))")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "lambdas/core/reasons.py")],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "a"
