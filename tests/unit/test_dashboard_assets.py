"""The dashboard's static files: the vendored files are the ones the manifest names, the page loads nothing
from the internet, every asset index.html names is shipped (as package data), and the atlas has one shape
for each state of the population table."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import tomllib
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest

import txpipe_cli.dashboard

PACKAGE = Path(txpipe_cli.dashboard.__file__).parent
STATIC = PACKAGE / "static"
VENDOR = STATIC / "vendor"
ROOT = Path(__file__).resolve().parents[2]
PAGE_FILES = ["index.html", "text.js", "dashboard.js", "dashboard.css"]
SVG_NS = "http://www.w3.org/2000/svg"  # a namespace name, never fetched: the one URL allowed
URL = re.compile(r"https?://[^\s\"'`<>()]*", re.IGNORECASE)
# What the browser test and the server rely on (see dashboard.js).
HOOK_IDS = ["state-picker", "state-name", "state-code", "state-rank", "total-pizzas", "gross-sales", "per-capita",
            "unique-customers", "freshness", "refresh-button", "map", "chart"]


def manifest() -> dict:
    return json.loads((VENDOR / "MANIFEST.json").read_text())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Page(HTMLParser):
    """Collects the ids and every src/href of index.html, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.refs: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value:
                self.ids.append(value)
            if name in ("src", "href"):
                self.refs.append((tag, value or ""))


def page() -> Page:
    parsed = Page()
    parsed.feed((STATIC / "index.html").read_text())
    return parsed


def external_urls(text: str) -> list[str]:
    return [url for url in URL.findall(text) if url != SVG_NS]


# (a) the vendored files

def test_every_manifest_file_exists_with_its_sha256_and_license() -> None:
    files = manifest()["files"]
    assert {f["package"] for f in files} == {"d3", "topojson-client", "us-atlas"}
    for entry in files:
        path = VENDOR / entry["file"]
        assert path.is_file(), f"{entry['file']} is in MANIFEST.json but not in {VENDOR}"
        assert sha256(path) == entry["sha256"], f"{entry['file']} differs from {entry['package']}@{entry['version']}"
        assert entry["version"] and entry["path_in_package"] and entry["license"], entry
        license_text = (VENDOR / entry["license_file"]).read_text()
        assert "Permission" in license_text or "License" in license_text, entry["license_file"]


def test_nothing_is_vendored_outside_the_manifest() -> None:
    listed = {f["file"] for f in manifest()["files"]} | {f["license_file"] for f in manifest()["files"]}
    shipped = {p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.is_file()} - {"MANIFEST.json"}
    assert shipped == listed


def test_the_manifest_matches_the_pins_in_the_vendoring_script() -> None:
    script = (ROOT / "scripts/vendor_dashboard.sh").read_text()
    pins = set(re.findall(r'^\s*"([\w-]+) (\d[\w.-]*) ([\w./-]+)"', script, re.MULTILINE))
    assert pins == {(f["package"], f["version"], f["path_in_package"]) for f in manifest()["files"]}, (
        "the pins changed: run bash scripts/vendor_dashboard.sh and commit static/vendor/")


# (b) nothing from the internet

def test_url_finder_catches_a_cdn_and_allows_only_the_svg_namespace() -> None:
    text = f'<script src="https://cdn.jsdelivr.net/npm/d3@7"></script> createElementNS("{SVG_NS}", "g") http://x.test/a'
    assert external_urls(text) == ["https://cdn.jsdelivr.net/npm/d3@7", "http://x.test/a"]


@pytest.mark.parametrize("name", PAGE_FILES)
def test_page_files_load_nothing_from_the_internet(name: str) -> None:
    assert external_urls((STATIC / name).read_text()) == []


# (c) every asset the page names is shipped

def test_every_src_and_href_of_the_page_is_a_file_under_static() -> None:
    refs = page().refs
    assert refs, "index.html names no assets"
    for tag, ref in refs:
        assert ref.startswith("/static/"), f"<{tag}> {ref!r}: assets are served from /static/"
        assert (STATIC / ref.removeprefix("/static/")).is_file(), f"<{tag}> {ref!r} is not in {STATIC}"


def test_the_libraries_load_before_the_page_script() -> None:
    scripts = [ref for tag, ref in page().refs if tag == "script"]
    assert scripts == ["/static/vendor/d3.min.js", "/static/vendor/topojson-client.min.js", "/static/text.js",
                       "/static/dashboard.js"]


def test_every_static_path_in_the_script_is_shipped() -> None:
    paths = re.findall(r'"/static/([^"]+)"', (STATIC / "dashboard.js").read_text())
    assert "vendor/states-albers-10m.json" in paths
    for path in paths:
        assert (STATIC / path).is_file(), path


def test_package_data_ships_every_static_file() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["txpipe_cli"]
    package_root = PACKAGE.parent
    shipped = {p for pattern in patterns for p in package_root.glob(pattern) if p.is_file()}
    on_disk = {p for p in STATIC.rglob("*") if p.is_file()}
    assert on_disk - shipped == set(), "add their folder to [tool.setuptools.package-data] txpipe_cli"


def test_the_page_has_the_hooks_the_browser_test_uses() -> None:
    ids = page().ids
    assert len(ids) == len(set(ids)), "duplicate ids"
    assert set(HOOK_IDS) <= set(ids)


# (d) the atlas

def test_the_atlas_has_one_shape_per_state_of_the_population_table() -> None:
    table = resources.files("lambdas.core").joinpath("data/us_state_population_2020.csv").read_text()
    names = [row["state_name"] for row in csv.DictReader(table.splitlines())]
    assert len(names) == 51
    atlas = json.loads((VENDOR / "states-albers-10m.json").read_text())
    shapes = [g["properties"]["name"] for g in atlas["objects"]["states"]["geometries"]]
    assert sorted(shapes) == sorted(names)
