"""`txpipe dashboard --open` with no browser on the machine says so, with the URL, instead of nothing."""

from __future__ import annotations

import webbrowser

import pytest

from txpipe_cli.commands import dashboard


@pytest.mark.parametrize(("opened", "said"), [(False, True), (True, False)])
def test_open_says_when_no_browser_opened_the_page(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                   opened: bool, said: bool) -> None:
    asked: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url: asked.append(url) or opened)
    dashboard._open_browser("http://127.0.0.1:8050/")
    assert asked == ["http://127.0.0.1:8050/"]
    out = capsys.readouterr().err  # stderr: with --json stdout is the URL line alone
    assert ("no browser found on this machine: open http://127.0.0.1:8050/ in one" in out) is said
