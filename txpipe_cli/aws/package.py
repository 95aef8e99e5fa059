"""`txpipe package`: one reproducible, content-hashed Lambda artifact for all five functions.

The pipeline, in stages:

1. wheels: `pip download --only-binary=:all: --no-deps` of the pinned `lambdas/requirements.txt`
   for the Lambda runtime (CPython 3.12, manylinux2014_x86_64) into a cache directory keyed by the
   hash of requirements + platform + Python version: `~/.cache/txpipe/wheels/<hash>`, or
   `$TXPIPE_WHEEL_CACHE/<hash>`. A cache is filled in a scratch directory and renamed into place
   only when complete, so a rebuild from the same inputs is offline and fast.
2. tree: every wheel (a zip) is unpacked into one in-memory tree, its `*.data/purelib|platlib`
   moved to the root as an installer would; then the `lambdas` package is added (its .py files
   and `core/data/*.csv`; no __pycache__, no tests).
3. zip: entries sorted, every timestamp 1980-01-01, permissions 0644 (files) / 0755 (directories),
   ZIP_DEFLATED at a fixed level, so the same inputs give byte-identical output. The file is named
   `txpipe-lambdas-<sha256[:16]>.zip` after its own content hash.

All five functions (lambdas/functions.py, the one list of them) share the one artifact and differ
only in their handler: one upload and one hash per release, and the handlers are thin layers over the
same `lambdas.core` and the same dependencies, so per-function zips would be five near-identical
copies that could drift apart. boto3 is not bundled: the Lambda Python runtime provides it.

The template is packaged too (`compile_template`): infra/template.yaml with its short tags (!Sub,
!GetAtt, ...) resolved into their Fn:: forms by cfn-lint's loader, as compact JSON, named after its
own content hash. That is what CloudFormation receives, from the artifacts bucket (TemplateURL).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lambdas
from lambdas.functions import FUNCTIONS
from txpipe_cli.errors import TxpipeError

LAMBDAS_DIR = Path(lambdas.__file__).resolve().parent
REQUIREMENTS = LAMBDAS_DIR / "requirements.txt"
# CloudFormation's documented limits: a template sent in the request (TemplateBody) and one it reads
# from S3 (TemplateURL, "1 MB": counted here as 10^6 bytes, the stricter reading).
TEMPLATE_BODY_LIMIT = 51_200
TEMPLATE_URL_LIMIT = 1_000_000
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
FILE_MODE, DIR_MODE = 0o100644, 0o040755
Progress = Callable[[str], None]


def wheel_cache_root() -> Path:
    root = os.environ.get("TXPIPE_WHEEL_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "txpipe" / "wheels"


def cache_key(requirements: bytes, python_version: str, platform: str) -> str:
    digest = hashlib.sha256(requirements)
    digest.update(f"\0{platform}\0cp\0{python_version}".encode())
    return digest.hexdigest()[:24]


def pinned(requirements: bytes) -> set[str]:
    """`name-version` of every requirement, spelled as wheel file names spell them; all must be ==."""
    pins = set()
    for line in requirements.decode().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9.+!_-]+)", line)
        if not match:
            raise TxpipeError(f"{REQUIREMENTS} has a requirement that is not pinned: {line!r}",
                              hint="pin it as name==version, so that builds are reproducible")
        pins.add(f"{re.sub(r'[-_.]+', '_', match.group(1)).lower()}-{match.group(2)}")
    return pins


def _missing(wheels: Path, pins: set[str]) -> set[str]:
    return pins - {"-".join(w.name.split("-")[:2]).lower() for w in wheels.glob("*.whl")}


def download_wheels(python_version: str, platform: str, progress: Progress) -> Path:
    """Stage 1: the pinned wheels for the target runtime, downloaded once per distinct input."""
    if not re.fullmatch(r"3\.\d{1,2}(\.\d{1,2})?", python_version):
        raise TxpipeError(f"bad Python version {python_version!r}", hint="use MAJOR.MINOR[.MICRO], e.g. 3.12")
    requirements = REQUIREMENTS.read_bytes()
    pins = pinned(requirements)
    cache = wheel_cache_root() / cache_key(requirements, python_version, platform)
    if cache.is_dir():
        if not _missing(cache, pins):
            progress(f"wheels cached in {cache}")
            return cache
        shutil.rmtree(cache)  # damaged by hand: download it again
    cache.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{cache.name}-", dir=cache.parent))
    progress(f"downloading wheels for CPython {python_version} {platform}")
    command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
               "--only-binary=:all:", "--platform", platform, "--python-version", python_version,
               "--implementation", "cp", "--no-deps", "-r", str(REQUIREMENTS), "-d", str(scratch)]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - fixed argv
        if proc.returncode != 0:
            raise _pip_error(proc.stderr or proc.stdout, python_version, platform)
        if _missing(scratch, pins):
            raise TxpipeError(f"pip did not download {', '.join(sorted(_missing(scratch, pins)))}",
                              hint="check lambdas/requirements.txt")
        try:
            scratch.rename(cache)
        except OSError:  # another build filled the cache first: use it
            if not cache.is_dir():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return cache


def _pip_error(output: str, python_version: str, platform: str) -> TxpipeError:
    missing = re.search(r"No matching distribution found for (\S+)", output)
    if missing:
        return TxpipeError(f"no wheel of {missing.group(1)} for CPython {python_version} on {platform}",
                           hint="pin a version that publishes one in lambdas/requirements.txt")
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    reason = next((line for line in reversed(lines) if line.startswith("ERROR")), lines[-1] if lines else "")
    return TxpipeError(f"pip could not download the Lambda wheels: {reason or 'unknown error'}",
                       hint="check access to PyPI, or point TXPIPE_WHEEL_CACHE at a warm cache")


def _tree(wheels: Path) -> dict[str, bytes]:
    """Stage 2: the files of every wheel and of the `lambdas` package, by archive path."""
    tree: dict[str, bytes] = {}

    def add(name: str, data: bytes, origin: str) -> None:
        if "__pycache__/" in name or name.endswith(".pyc"):
            return
        if name in tree and tree[name] != data:
            raise TxpipeError(f"{origin} and another wheel both ship {name} with different content",
                              hint="pin compatible versions in lambdas/requirements.txt")
        tree[name] = data

    found = sorted(wheels.glob("*.whl"))
    if not found:
        raise TxpipeError(f"no wheels in {wheels}", hint="delete that directory to download them again")
    for wheel in found:
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                name = info.filename
                data_dir = re.match(r"[^/]+\.data/([^/]+)/(.+)", name)
                if data_dir:
                    if data_dir.group(1) not in ("purelib", "platlib"):
                        continue  # scripts, headers, data: not importable code
                    name = data_dir.group(2)
                add(name, archive.read(info), wheel.name)
    for path in sorted(LAMBDAS_DIR.rglob("*")):
        relative = path.relative_to(LAMBDAS_DIR.parent)
        parts = relative.parts
        if not path.is_file() or "__pycache__" in parts or any(p in ("tests", "test") for p in parts):
            continue
        if path.suffix == ".py" or (parts[:3] == ("lambdas", "core", "data") and path.suffix == ".csv"):
            add(relative.as_posix(), path.read_bytes(), "lambdas")
    return tree


def _zip_bytes(tree: dict[str, bytes]) -> bytes:
    """Stage 3: a deterministic zip of the tree (directories listed explicitly)."""
    directories = {"/".join(name.split("/")[:i]) + "/" for name in tree for i in range(1, name.count("/") + 1)}
    entries = sorted([(d, None) for d in directories] + list(tree.items()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.create_system = 3  # Unix, so external_attr carries the permissions
            if data is None:
                info.external_attr = (DIR_MODE << 16) | 0x10
                archive.writestr(info, b"")
            else:
                info.external_attr = FILE_MODE << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
    return buffer.getvalue()


def build(out_dir: Path, *, python_version: str = "3.12", platform: str = "manylinux2014_x86_64",
          progress: Progress | None = None) -> dict[str, Any]:
    """Builds the artifact into out_dir and describes it (see the module docstring)."""
    say = progress or (lambda message: None)
    wheels = download_wheels(python_version, platform, say)
    say("assembling the package tree")
    tree = _tree(wheels)
    say(f"zipping {len(tree)} files")
    data = _zip_bytes(tree)
    sha256 = hashlib.sha256(data).hexdigest()
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # the state directory's build/ by default: 0700
    path = out_dir / f"txpipe-lambdas-{sha256[:16]}.zip"
    with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".txpipe-lambdas-", delete=False) as tmp:
        tmp.write(data)  # 0600, as NamedTemporaryFile makes it: only the operator reads it, to upload it
    os.replace(tmp.name, path)
    return {
        "functions": {name: {"zip": str(path), "handler": function.handler} for name, function in FUNCTIONS.items()},
        "sha256": sha256,
        "bytes": len(data),
        "python": python_version,
        "platform": platform,
    }


@dataclass(frozen=True)
class CompiledTemplate:
    """The template as CloudFormation receives it."""

    body: bytes  # compact JSON, UTF-8
    sha256: str

    @property
    def key(self) -> str:
        """Its key in the artifacts bucket: content-hashed, like the Lambda artifact."""
        return f"templates/txpipe-{self.sha256[:16]}.json"

    @property
    def fits_in_request(self) -> bool:
        return len(self.body) <= TEMPLATE_BODY_LIMIT


def compile_template(text: str | None = None) -> CompiledTemplate:
    """The resolved template (infra/template.json, or YAML `text` resolved) as compact JSON; refused past
    CloudFormation's 1 MB limit."""
    from infra import resolve, resolved_template

    body = json.dumps(resolve(text) if text is not None else resolved_template(), separators=(",", ":")).encode()
    if len(body) > TEMPLATE_URL_LIMIT:
        raise TxpipeError(f"the template is {len(body):,} bytes as compact JSON, over CloudFormation's "
                          f"{TEMPLATE_URL_LIMIT:,}-byte limit", hint="split it into nested stacks")
    return CompiledTemplate(body, hashlib.sha256(body).hexdigest())
