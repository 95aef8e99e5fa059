#!/usr/bin/env bash
# Vendors the dashboard's front-end files from pinned npm packages into
# txpipe_cli/dashboard/static/vendor/, so the page works with no internet and CI needs no npm.
#
# For each pinned package: `npm pack name@version` (npm checks the tarball against the registry's
# integrity hash), extract it, copy the one file we ship and the package's LICENSE
# (vendor/licenses/<package>.txt), then write vendor/MANIFEST.json: per shipped file its package,
# version, path inside the package, sha256, license and the tarball's integrity.
# tests/unit/test_dashboard_assets.py checks the manifest against the files.
# To upgrade: change a pin below, run `bash scripts/vendor_dashboard.sh`, run the tests, commit vendor/.
set -euo pipefail
cd "$(dirname "$0")/.."

# package version path-inside-the-package
PINS=(
  "d3 7.9.0 dist/d3.min.js"                           # the UMD bundle: defines window.d3
  "topojson-client 3.1.0 dist/topojson-client.min.js" # defines window.topojson
  "us-atlas 3.0.1 states-albers-10m.json"             # 50 states + DC, already Albers USA in 975x610
)

dest=txpipe_cli/dashboard/static/vendor
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
command -v npm >/dev/null || { echo "vendor_dashboard.sh: npm is not installed" >&2; exit 1; }

rm -rf "$dest"
mkdir -p "$dest/licenses"
entries="$tmp/entries.tsv"
: > "$entries"
for pin in "${PINS[@]}"; do
  read -r name version path <<<"$pin"
  work="$tmp/$name"
  mkdir -p "$work/x"
  npm pack "$name@$version" --pack-destination "$work" --json --silent > "$work/pack.json"
  tar xzf "$work"/*.tgz -C "$work/x"
  pkg="$work/x/package"
  [ -f "$pkg/$path" ] || { echo "vendor_dashboard.sh: $name@$version has no $path" >&2; exit 1; }
  [ -f "$pkg/LICENSE" ] || { echo "vendor_dashboard.sh: $name@$version has no LICENSE" >&2; exit 1; }
  cp "$pkg/$path" "$dest/$(basename "$path")"
  cp "$pkg/LICENSE" "$dest/licenses/$name.txt"
  printf '%s\t%s\t%s\t%s\n' "$name" "$version" "$path" "$work" >> "$entries"
  echo "vendored $name@$version $path ($(wc -c < "$pkg/$path") bytes)" >&2
done

# node comes with npm; it hashes the files and writes a stable manifest (no timestamps: a re-run
# with the same pins changes nothing).
node - "$dest" "$entries" <<'EOF'
const fs = require("fs"), path = require("path"), crypto = require("crypto");
const [dest, entries] = process.argv.slice(2);
const files = fs.readFileSync(entries, "utf8").trim().split("\n").map((line) => {
  const [name, version, inPackage, work] = line.split("\t");
  const pkg = JSON.parse(fs.readFileSync(path.join(work, "x/package/package.json"), "utf8"));
  if (pkg.version !== version) throw new Error(`${name}: packed ${pkg.version}, pinned ${version}`);
  const file = path.basename(inPackage);
  const sha256 = crypto.createHash("sha256").update(fs.readFileSync(path.join(dest, file))).digest("hex");
  const packed = JSON.parse(fs.readFileSync(path.join(work, "pack.json"), "utf8"))[0];
  return {
    file, package: name, version, path_in_package: inPackage, sha256,
    license: pkg.license, license_file: `licenses/${name}.txt`, tarball_integrity: packed.integrity,
  };
});
const manifest = {
  generated_by: "scripts/vendor_dashboard.sh",
  note: "Vendored from npm; paths are relative to this directory. Do not edit by hand: change the pins and re-run.",
  files,
};
fs.writeFileSync(path.join(dest, "MANIFEST.json"), JSON.stringify(manifest, null, 2) + "\n");
EOF
echo "wrote $dest/MANIFEST.json" >&2
