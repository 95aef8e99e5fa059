"""Which state a text names (txpipe_cli/states.py), the rule `report --state` and the dashboard share."""

from __future__ import annotations

import pytest

from lambdas.core.reporting import STATE_CODES
from txpipe_cli.states import StateNotFound, resolve, resolve_codes, states


@pytest.mark.parametrize(("text", "code"), [
    ("TX", "TX"), ("tx", "TX"), (" Tx ", "TX"), ("Texas", "TX"), ("TEXAS", "TX"), ("tex", "TX"), ("t", None),
    ("calif", "CA"), ("new y", "NY"), ("new  york", "NY"), ("New York", "NY"), ("dist", "DC"), ("DC", "DC"),
    # an exact code or name wins over the names it also starts
    ("ne", "NE"), ("ma", "MA"), ("Virginia", "VA"), ("kansas", "KS"), ("Washington", "WA"),
    ("wes", "WV"), ("u", "UT"), ("h", "HI"),
])
def test_a_code_a_name_or_the_unambiguous_start_of_one(text: str, code: str | None) -> None:
    if code is None:
        with pytest.raises(StateNotFound):
            resolve(text)
    else:
        assert resolve(text).code == code


def test_an_ambiguous_start_names_the_candidates_in_one_line() -> None:
    with pytest.raises(StateNotFound) as caught:
        resolve("new")
    assert str(caught.value) == ("new matches New Hampshire, New Jersey, New Mexico, New York "
                                 "(give more of the name, or the code)")
    assert [s.code for s in caught.value.candidates] == ["NH", "NJ", "NM", "NY"]


@pytest.mark.parametrize("text", ["ZZ", "PR", "Texass", "york", "xx" * 50])
def test_an_unknown_text_is_not_a_us_state(text: str) -> None:
    with pytest.raises(StateNotFound) as caught:
        resolve(text)
    message = str(caught.value)
    assert message.startswith(f"{text[:40]}") and " is not a US state (" in message and "\n" not in message
    assert len(message) <= 130 and caught.value.candidates == ()


@pytest.mark.parametrize("text", ["", "   "])
def test_nothing_is_no_state(text: str) -> None:
    with pytest.raises(StateNotFound, match="no state given"):
        resolve(text)


def test_every_state_by_its_code_and_its_name() -> None:
    assert {s.code for s in states()} == STATE_CODES and len(states()) == 51
    assert all(resolve(s.code).code == resolve(s.name.lower()).code == s.code for s in states())


def test_codes_in_order_each_once() -> None:
    assert resolve_codes(["tex", "CA", "Texas", "new y"]) == ["TX", "CA", "NY"]
