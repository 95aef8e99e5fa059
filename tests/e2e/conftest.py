"""What the e2e tests (the local target through the CLI) share: the `dashboard` fixture.

Each e2e module deploys its own local target in a module-scoped `cli` fixture (tests/support/local_cli.py's
`local_home`; tests/support/dashboard.py's `dashboard_home` for one with figures to show); `dashboard` starts
`txpipe dashboard` over the requesting module's `cli`, once per module, and stops it after the module's tests.
The helpers themselves live in tests/support/, which any tier may import; nothing here is imported.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.dashboard import Dashboard
from tests.support.local_cli import Cli


@pytest.fixture(scope="module")
def dashboard(cli: Cli) -> Iterator[Dashboard]:
    """A `txpipe dashboard` process over the module's deployment (its printed URL's cookie held)."""
    server = Dashboard(cli.home)
    yield server
    server.stop()
