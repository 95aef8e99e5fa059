"""`python -m infra`: writes infra/template.json from infra/template.yaml (run it after editing the YAML)."""

from __future__ import annotations

import json
from pathlib import Path

from infra import resolve

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    resolved = resolve((HERE / "template.yaml").read_text())
    (HERE / "template.json").write_text(json.dumps(resolved, indent=1) + "\n")
    print(f"wrote {HERE / 'template.json'}")
