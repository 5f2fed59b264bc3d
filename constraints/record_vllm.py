"""Record what ``pip install 'detente[vllm]'`` resolves to, for the offline check of the extra.

Run from the repository root on any Linux x86_64 machine with Python 3.11 and the package
registry (no GPU: pip reads the packages' metadata and installs nothing)::

    python constraints/record_vllm.py

It runs ``pip install --dry-run --ignore-installed --report`` for ``.[vllm]`` and writes

* ``constraints/vllm-0.33.0.json``: every package of the resolution, detente excepted, with its
  version and its declared requirements (``requires_dist``, as published), and the marker
  environment it was resolved for. ``tests/test_requirements.py`` re-checks, offline, that this
  set satisfies vLLM's requirements, every other package's, and pyproject.toml's *current*
  ranges (a range edited out of what vLLM accepts fails there);
* ``constraints/vllm.txt``: the same versions as a lock for a GPU machine
  (``pip install -c constraints/vllm.txt '.[vllm]'``).

Re-run it when pyproject.toml's ranges or the vLLM pin change.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

VLLM = "0.33.0"
HERE = Path(__file__).resolve().parent


def resolve(project: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run(
            [
                sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
                "--quiet", "--report", str(report), f"{project}[vllm]",
            ],
            check=True,
        )
        return json.loads(report.read_text())


def record(report: dict) -> tuple[dict, str]:
    packages = {}
    for item in report["install"]:
        meta = item["metadata"]
        if meta["name"] == "detente":
            continue
        packages[meta["name"]] = {
            "version": meta["version"],
            "requires_dist": meta.get("requires_dist", []),
        }
    if packages.get("vllm", {}).get("version") != VLLM:
        raise SystemExit(f"the resolution has no vllm=={VLLM}")
    data = {
        "note": f"pip's resolution of detente[vllm] (vllm=={VLLM}); see record_vllm.py",
        "pip_version": report["pip_version"],
        "environment": report["environment"],
        "packages": dict(sorted(packages.items(), key=lambda kv: kv[0].lower())),
    }
    lock = "".join(
        f"{name}=={p['version']}\n" for name, p in data["packages"].items()
    )
    header = (
        f"# What `pip install '.[vllm]'` resolved to (vllm=={VLLM}, Linux x86_64, Python 3.11),\n"
        "# written by constraints/record_vllm.py. A lock for a GPU machine:\n"
        "#   pip install -c constraints/vllm.txt -e '.[vllm]'\n"
    )
    return data, header + lock


def main() -> None:
    data, lock = record(resolve(HERE.parent))
    (HERE / f"vllm-{VLLM}.json").write_text(json.dumps(data, indent=1) + "\n")
    (HERE / "vllm.txt").write_text(lock)
    print(f"{len(data['packages'])} packages recorded")


if __name__ == "__main__":
    main()
