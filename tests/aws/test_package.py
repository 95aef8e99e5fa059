"""`txpipe package`: the Lambda artifact is reproducible, complete, and runs with the repo out of sight.

The first run downloads the pinned wheels (and boto3 for the child) into the wheel cache
(~/.cache/txpipe/wheels or $TXPIPE_WHEEL_CACHE); every later run builds offline from it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from lambdas.core.queue import PgQueue
from lambdas.functions import FUNCTIONS as REGISTRY
from tests.integration.helpers import query, scalar, seed_customers
from txpipe_cli.aws import package as packaging
from txpipe_cli.commands.package import package as package_command
from txpipe_cli.errors import TxpipeError
from txpipe_cli.local.events import REGION, api_gateway_event, queue_arn, scheduled_event

PY312 = Path("/root/.pyenv/versions/3.12.1/bin/python")
_which = shutil.which("python3.12")
_found = PY312 if PY312.exists() else (Path(_which) if _which else None)
# The interpreter that runs the artifact, and the Python version its wheels are built for (with the
# micro version for a fallback interpreter: some pins need e.g. >=3.11.5, and pip reads "3.11" as 3.11.0).
RUNTIME_PYTHON = str(_found) if _found else sys.executable
RUNTIME_VERSION = "3.12" if _found else ".".join(map(str, sys.version_info[:3]))
MAJOR_MINOR = ".".join(RUNTIME_VERSION.split(".")[:2])
FUNCTIONS = list(REGISTRY)  # lambdas/functions.py, the one list packaging, the template and the runtime share


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The artifact for the runtime Python; the slow part (wheel download) happens once, then is cached."""
    return packaging.build(tmp_path_factory.mktemp("build"), python_version=RUNTIME_VERSION)


@pytest.fixture(scope="session")
def boto3_dir() -> Path:
    """boto3 and its dependencies alone in a `pip install --target` dir, as the Lambda runtime provides them."""
    version = importlib.metadata.version("boto3")
    target = packaging.wheel_cache_root() / f"test-boto3-{version}-py{MAJOR_MINOR}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        pip = subprocess.run([RUNTIME_PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                              "--quiet", "--no-compile", "--only-binary=:all:", "--target", str(scratch),
                              f"boto3=={version}"], capture_output=True, text=True, timeout=300)
        assert pip.returncode == 0, pip.stderr[-2000:]
        try:
            scratch.rename(target)
        except OSError:
            assert target.is_dir()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def test_building_twice_gives_the_same_name_and_bytes(artifact, tmp_path):
    """Two builds from the same inputs produce a byte-identical zip under the same content-hashed name."""
    again = packaging.build(tmp_path, python_version=RUNTIME_VERSION)
    first, second = Path(artifact["functions"]["ingest"]["zip"]), Path(again["functions"]["ingest"]["zip"])
    assert first.parent != second.parent
    assert first.name == second.name == f"txpipe-lambdas-{artifact['sha256'][:16]}.zip"
    assert first.read_bytes() == second.read_bytes()
    assert hashlib.sha256(second.read_bytes()).hexdigest() == again["sha256"] == artifact["sha256"]
    assert again["bytes"] == second.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == [second.name]  # no temporary file left behind


def test_result_names_one_shared_zip_and_each_handler(artifact):
    """Every registered function points at the one artifact with its registered module.handler, plus
    runtime and hash."""
    assert FUNCTIONS == ["ingest", "store", "sync", "refresh", "ops"]
    assert list(artifact["functions"]) == FUNCTIONS
    assert {f["zip"] for f in artifact["functions"].values()} == {artifact["functions"]["ingest"]["zip"]}
    assert [f["handler"] for f in artifact["functions"].values()] == [REGISTRY[n].handler for n in FUNCTIONS]
    assert [f["handler"] for f in artifact["functions"].values()] == [f"lambdas.{n}.handler" for n in FUNCTIONS]
    assert (artifact["python"], artifact["platform"]) == (RUNTIME_VERSION, "manylinux2014_x86_64")
    assert len(artifact["sha256"]) == 64


def test_zip_holds_handlers_data_and_wheels_but_not_boto3(artifact):
    """The zip has the handlers, the census CSV and the Linux wheels; no boto3, bytecode, tests or CLI."""
    with zipfile.ZipFile(artifact["functions"]["ingest"]["zip"]) as archive:
        infos = archive.infolist()
    names = [i.filename for i in infos]
    tops = {n.split("/")[0] for n in names}
    assert names == sorted(names)
    for name in FUNCTIONS:
        assert f"lambdas/{name}.py" in names
    assert "lambdas/core/env.py" in names
    assert "lambdas/core/data/us_state_population_2020.csv" in names
    so = f".cpython-{MAJOR_MINOR.replace('.', '')}-x86_64-linux-gnu.so"  # built for the runtime, on Linux
    assert "pydantic_core/_pydantic_core" + so in names
    assert "psycopg2/_psycopg" + so in names
    assert {"pydantic", "redshift_connector", "scramp", "bs4", "lxml", "requests", "psycopg2_binary.libs"} <= tops
    assert not tops & {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six.py"}
    assert not tops & {"txpipe_cli", "tests"}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith("lambdas/requirements")]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    modes = {(i.is_dir(), i.external_attr >> 16) for i in infos}
    assert modes == {(True, 0o040755), (False, 0o100644)}
    assert {i.compress_type for i in infos if not i.is_dir()} == {zipfile.ZIP_DEFLATED}


def test_a_platform_without_wheels_fails_with_a_reason_and_hint(tmp_path, monkeypatch):
    """Asking for a platform the compiled dependencies do not ship for raises one actionable TxpipeError."""
    monkeypatch.setenv("TXPIPE_WHEEL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(TxpipeError) as raised:
        packaging.build(tmp_path / "out", python_version="3.12", platform="linux_s390x")
    assert raised.value.reason.startswith("no wheel of ")
    assert "linux_s390x" in raised.value.reason and "\n" not in raised.value.line()
    assert "lambdas/requirements.txt" in (raised.value.hint or "")
    assert not (tmp_path / "out").exists()
    assert list((tmp_path / "cache").iterdir()) == []  # a failed download never becomes a cache


def test_an_unpinned_requirement_is_refused(tmp_path, monkeypatch):
    """A requirement without == would make builds drift, so it stops the build before any download."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# comment\npydantic==2.13.4  # pinned\npsycopg2-binary>=2.9\n")
    monkeypatch.setattr(packaging, "REQUIREMENTS", requirements)
    monkeypatch.setenv("TXPIPE_WHEEL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(TxpipeError, match="not pinned: 'psycopg2-binary>=2.9'"):
        packaging.build(tmp_path / "out")
    assert not (tmp_path / "cache").exists()


def test_a_damaged_wheel_cache_is_downloaded_again(artifact, tmp_path, monkeypatch):
    """A cache missing one of the pinned wheels is fetched anew, and the build is the same as before."""
    key = packaging.cache_key(packaging.REQUIREMENTS.read_bytes(), RUNTIME_VERSION, "manylinux2014_x86_64")
    cache = tmp_path / "cache" / key
    shutil.copytree(packaging.wheel_cache_root() / key, cache)
    [idna] = cache.glob("idna-*.whl")
    idna.unlink()
    monkeypatch.setenv("TXPIPE_WHEEL_CACHE", str(tmp_path / "cache"))
    rebuilt = packaging.build(tmp_path / "out", python_version=RUNTIME_VERSION)
    assert idna.exists()
    assert rebuilt["sha256"] == artifact["sha256"]


def test_package_command_prints_json_of_the_artifact(artifact, tmp_path):
    """`txpipe package --json` builds into --output and prints the functions, hash and size."""
    app = typer.Typer()
    app.command()(package_command)
    result = CliRunner().invoke(app, ["--json", "--output", str(tmp_path), "--python-version", RUNTIME_VERSION])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["sha256"] == artifact["sha256"]
    assert printed["functions"]["sync"] == {"zip": str(tmp_path / Path(artifact["functions"]["sync"]["zip"]).name),
                                            "handler": "lambdas.sync.handler"}


CHILD = r"""
import importlib.util, json, sys, time
spec = json.load(sys.stdin)
sys.path.insert(0, spec["code"])      # /var/task: the extracted artifact
sys.path.append(spec["boto3"])        # the runtime's own boto3, after the function code

import lambdas
from lambdas import ingest, ops, refresh, store, sync
from lambdas.core import env
from lambdas.core.queue import sqs_event

class Context:
    def __init__(self, name):
        self.function_name, self.aws_request_id, self._end = name, "req-" + name, time.monotonic() + 60
    def get_remaining_time_in_millis(self):
        return int((self._end - time.monotonic()) * 1000)

events = spec["events"]
out = {"ingest": ingest.handler(events["api"], Context("ingest"))}
queue = env.queue()
messages = queue.receive(10)
out["received"] = len(messages)
out["store"] = store.handler(sqs_event(messages, spec["queue_arn"], spec["region"]), Context("store"))
failed = {f["itemIdentifier"] for f in out["store"]["batchItemFailures"]}
queue.delete([m.receipt_handle for m in messages if m.message_id not in failed])  # as the event source mapping
out["sync"] = sync.handler(events["sync"], Context("sync"))
out["refresh"] = refresh.handler(events["refresh"], Context("refresh"))
out["ops"] = ops.handler({"action": "report", "states": ["TX"]}, Context("ops"))
out["boto3_imported_by_handlers"] = "boto3" in sys.modules

import psycopg2, pydantic_core, redshift_connector, boto3
out["files"] = {m.__name__: m.__file__ for m in (lambdas, psycopg2, pydantic_core, redshift_connector, boto3)}
out["importable"] = {n: importlib.util.find_spec(n) is not None for n in ("txpipe_cli", "tests", "moto")}
out["python"] = "%d.%d" % sys.version_info[:2]
print(json.dumps(out, default=str))
"""

ORDERS = [
    {"order_id": "pkg-1", "customer_id": 1, "type": "cheese", "qty": 2, "retail_price": 10},
    {"order_id": "pkg-2", "customer_id": 2, "type": "pepperoni", "qty": 3, "retail_price": 12.5},
    {"order_id": "pkg-3", "customer_id": 1, "type": "cheese", "qty": 1, "retail_price": 10},
    {"order_id": "pkg-4", "customer_id": 3, "type": "veggie", "qty": 1, "retail_price": 9},
]


def test_extracted_artifact_runs_every_handler_against_the_local_databases(artifact, boto3_dir, handler_env,
                                                                           tmp_path):
    """Unzipped alone, the artifact imports and runs all five handlers on real events, repo off sys.path."""
    seed_customers(handler_env, [[1, "TX", "Ann"], [2, "TX", "Bob"], [3, "CA", "Cy"]])
    code = tmp_path / "task"
    code.mkdir()
    with zipfile.ZipFile(artifact["functions"]["ingest"]["zip"]) as archive:
        archive.extractall(code)
    spec = {
        "code": str(code), "boto3": str(boto3_dir), "queue_arn": queue_arn("orders"), "region": REGION,
        "events": {
            "api": api_gateway_event("POST", "/orders", {"Content-Type": "application/json"},
                                     json.dumps(ORDERS).encode()),
            "sync": scheduled_event("txpipe-sync"),
            "refresh": scheduled_event("txpipe-refresh"),
        },
    }
    child_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", **handler_env.env()}
    # -I: no PYTHON* variables, no user site, no script dir; -S: no site-packages (so no editable txpipe).
    proc = subprocess.run([RUNTIME_PYTHON, "-I", "-S", "-c", CHILD], input=json.dumps(spec), cwd=code,
                          env=child_env, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    assert out["python"] == MAJOR_MINOR
    assert out["importable"] == {"txpipe_cli": False, "tests": False, "moto": False}
    for module in ("lambdas", "psycopg2", "pydantic_core", "redshift_connector"):
        assert Path(out["files"][module]).is_relative_to(code), out["files"]
    assert Path(out["files"]["boto3"]).is_relative_to(boto3_dir)
    assert out["boto3_imported_by_handlers"] is False

    assert out["ingest"]["statusCode"] == 202, out["ingest"]
    assert json.loads(out["ingest"]["body"])["order_ids"] == ["pkg-1", "pkg-2", "pkg-3", "pkg-4"]
    assert out["received"] == 1  # the request's four orders, packed in one message
    assert out["store"] == {"batchItemFailures": []}
    assert (out["sync"]["synced"], out["sync"]["pending"]) == (4, 0)
    assert "sales_by_state" in out["refresh"]["refreshed"]
    assert out["ops"]["freshness"]["awaiting_refresh"] == 0 and out["ops"]["freshness"]["awaiting_sync"] == 0
    report = out["ops"]["states"][0]
    assert (report["state"], report["total_pizzas"], report["unique_customers"]) == ("TX", 6, 2)
    assert report["gross_sales"] == pytest.approx(67.5)
    assert [(p["pizza_type"], p["total_pizzas"]) for p in report["top_pizzas"]] == [("pepperoni", 3), ("cheese", 3)]

    assert query(handler_env, "oltp", "SELECT order_id, customer_id, qty FROM orders ORDER BY order_id") == [
        ("pkg-1", 1, 2), ("pkg-2", 2, 3), ("pkg-3", 1, 1), ("pkg-4", 3, 1)]
    assert scalar(handler_env, "oltp", "SELECT count(*) FROM outbox") == 0
    assert scalar(handler_env, "warehouse", "SELECT count(*) FROM orders_fact") == 4
    assert PgQueue.from_endpoint(handler_env.endpoints["queue"], "orders").stats().visible == 0
