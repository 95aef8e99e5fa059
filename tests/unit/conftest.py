"""What the unit tests share: the `client` fixture of the `txpipe send` tests (tests/unit/test_sender*.py).

`client` is an ApiClient on a served FakeApi whose backoff records its sleeps instead of sleeping, as
(ApiClient, FakeApi, Sleeps); closed after the test. The fakes themselves live in tests/support/sender.py,
which any tier may import; nothing here is imported.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.sender import FakeApi, Sleeps, fake_client
from txpipe_cli.sender import ApiClient


@pytest.fixture
def client() -> Iterator[tuple[ApiClient, FakeApi, Sleeps]]:
    with fake_client() as made:
        yield made
