"""The local queue's knobs are refused for AWS, where the template sets them: a value given there would be
recorded and never reach the queue. That the template's values are the ones the refusal names is
tests/aws/test_template_defaults.py's."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from txpipe_cli.app import app

runner = CliRunner()


@pytest.mark.parametrize(("args", "env", "named"), [
    (["--visibility-timeout", "45"], {}, "--visibility-timeout (or TXPIPE_VISIBILITY_TIMEOUT)"),
    (["--max-receive-count", "5"], {}, "--max-receive-count (or TXPIPE_MAX_RECEIVE_COUNT)"),
    ([], {"TXPIPE_MAX_RECEIVE_COUNT": "5"}, "--max-receive-count (or TXPIPE_MAX_RECEIVE_COUNT)"),
])
def test_a_local_only_setting_for_aws_is_one_usage_line(args: list[str], env: dict[str, str], named: str,
                                                        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_target(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("refused before any target is built")

    monkeypatch.setattr("txpipe_cli.commands.pipeline.get_target", no_target)
    result = runner.invoke(app, ["deploy", "--target", "aws", "--plan", *args],
                           env={"TXPIPE_HOME": str(tmp_path), **env})
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"error: {named} sets the local queue only; on aws the template sets it")
    assert "6 x the store function's timeout" in lines[0] and "max receive count: 1000" in lines[0]
    assert not result.stdout

