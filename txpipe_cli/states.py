"""A US state as analysts name it: its USPS code, its name, or the unambiguous start of either, any case.

One rule for `txpipe report --state` and the dashboard (its server resolves what the page sends, so the page
and the CLI agree by construction): an exact code (`NE`) or name (`Kansas`) is that state, even where it also
starts other names (`Virginia`, not West Virginia; `MA`, not Maine or Maryland); otherwise the states whose name
or code starts with the text (`tex`, `new y`, `dist`). One such state is the answer; several, or none, is a
refusal that says which states matched, or that none does. The names are the package's 2020 Census data
(lambdas/core/data/us_state_population_2020.csv): the 50 states and DC.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from lambdas.core.schema import state_populations

EXAMPLES = "give a name, a USPS code or the start of one: Texas, TX, tex"


@dataclass(frozen=True)
class State:
    code: str
    name: str


class StateNotFound(ValueError):  # noqa: N818 - reads as what happened, as ValueError's callers expect
    """No one state is meant by `text`: none matches (`candidates` empty) or several do (their names)."""

    def __init__(self, text: str, candidates: tuple[State, ...] = ()) -> None:
        self.text, self.candidates = text, candidates
        shown = " ".join(text.split())
        shown = shown if len(shown) <= 40 else shown[:40] + "..."  # echoed back: a line, whatever was sent
        if not shown:
            message = f"no state given ({EXAMPLES})"
        elif candidates:
            message = f"{shown} matches {', '.join(s.name for s in candidates)} (give more of the name, or the code)"
        else:
            message = f"{shown} is not a US state ({EXAMPLES})"
        super().__init__(message)


@cache
def states() -> tuple[State, ...]:
    """The 50 states and DC, by name."""
    return tuple(sorted((State(code, name) for code, name, _ in state_populations()), key=lambda s: s.name))


def _key(text: str) -> str:
    return " ".join(text.split()).casefold()


def resolve(text: str) -> State:
    """The one state `text` names (rule in the module docstring); StateNotFound otherwise."""
    wanted = _key(text)
    if not wanted:
        raise StateNotFound(text)
    for state in states():
        if wanted in (state.code.casefold(), _key(state.name)):
            return state
    found = tuple(s for s in states() if _key(s.name).startswith(wanted) or s.code.casefold().startswith(wanted))
    if len(found) == 1:
        return found[0]
    raise StateNotFound(text, found)


def resolve_codes(texts: list[str]) -> list[str]:
    """Each text's state code, in order, each state once."""
    return list(dict.fromkeys(resolve(text).code for text in texts))
