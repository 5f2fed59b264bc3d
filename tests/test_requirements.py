"""The declared ranges, the CPU lock and the vLLM extra, checked offline.

``pyproject.toml`` declares ranges; ``constraints/cpu.txt`` locks the CPU path (the Makefile
installs with it); ``constraints/low.txt`` is the environment the low end was tested in;
``constraints/vllm-0.33.0.json`` is pip's resolution of ``detente[vllm]`` with every package's
published requirements (``constraints/record_vllm.py``). The check of the extra re-verifies that
resolution against pyproject.toml as it is now: every requirement of every package in it,
vLLM's included, must be met by the recorded versions.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections import defaultdict
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements(*extras: str) -> list[Requirement]:
    """detente's core requirements and those of ``extras``."""
    texts = list(PROJECT["dependencies"])
    for extra in extras:
        texts += PROJECT["optional-dependencies"][extra]
    return [Requirement(t) for t in texts]


def pins(path: Path) -> dict[str, Version]:
    """``name==version`` lines of a constraints file (comments skipped), by canonical name."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[canonicalize_name(name)] = Version(version)
    return out


def unmet(
    roots: list[Requirement], packages: dict[str, dict], environment: dict[str, str]
) -> list[str]:
    """Every requirement reachable from ``roots`` that the recorded ``packages`` (name ->
    version, requires_dist) do not meet, in ``environment``; [] when the set is a resolution.

    A package's extras are those its dependants ask for (``fastapi[standard]``); its
    requirements are evaluated for each of them, and for no extra."""
    versions = {canonicalize_name(n): Version(p["version"]) for n, p in packages.items()}
    needs = {
        canonicalize_name(n): [Requirement(r) for r in p["requires_dist"]]
        for n, p in packages.items()
    }
    problems: list[str] = []
    done: set[tuple[str, str]] = set()
    todo: list[tuple[str, Requirement]] = [("detente", r) for r in roots]
    extras: dict[str, set[str]] = defaultdict(set)
    while todo:
        who, req = todo.pop()
        name = canonicalize_name(req.name)
        if name not in versions:
            problems.append(f"{who} needs {req}, which the resolution lacks")
            continue
        if not req.specifier.contains(versions[name], prereleases=True):
            problems.append(f"{who} needs {req}, the resolution has {name} {versions[name]}")
        for extra in {"", *req.extras}:
            if (name, extra) in done:
                continue
            done.add((name, extra))
            extras[name].add(extra)
            for sub in needs[name]:
                if sub.marker is None or sub.marker.evaluate({**environment, "extra": extra}):
                    todo.append((f"{name} {versions[name]}", sub))
    return sorted(set(problems))


def recorded_resolution() -> dict:
    return json.loads((CONSTRAINTS / "vllm-0.33.0.json").read_text())


def test_the_vllm_extra_resolves_against_vllms_recorded_requirements() -> None:
    data = recorded_resolution()
    roots = [r for r in requirements("vllm")]
    assert unmet(roots, data["packages"], data["environment"]) == []
    assert data["packages"]["vllm"]["version"] == "0.33.0"
    assert [str(r) for r in requirements("vllm") if r.name == "vllm"] == ["vllm==0.33.0"]


def test_the_old_exact_pins_do_not_resolve_with_vllm() -> None:
    """What pyproject.toml declared before: the check names each conflict."""
    old = [Requirement(t) for t in ("transformers==5.23.0", "fastapi==0.163.2", "numpy==2.4.6")]
    data = recorded_resolution()
    problems = unmet([*old, Requirement("vllm==0.33.0")], data["packages"], data["environment"])
    joined = "\n".join(problems)
    assert "detente needs transformers==5.23.0" in joined
    assert "detente needs fastapi==0.163.2" in joined
    assert "detente needs numpy==2.4.6" in joined  # vLLM's mistral-common wants numpy < 2.4


def test_torch_is_left_to_the_lock_and_to_vllm() -> None:
    """detente names no torch: the CPU lock pins the CPU build, vLLM its CUDA build."""
    assert "torch" not in {canonicalize_name(r.name) for r in requirements("vllm", "dev", "ray")}
    assert str(pins(CONSTRAINTS / "cpu.txt")["torch"]) == "2.13.0+cpu"
    assert any(
        r == "torch==2.14.0" for r in recorded_resolution()["packages"]["vllm"]["requires_dist"]
    )


def test_the_cpu_lock_lies_in_the_declared_ranges() -> None:
    lock = pins(CONSTRAINTS / "cpu.txt")
    for req in requirements("dev", "ray", "league"):
        version = lock.get(canonicalize_name(req.name))
        assert version is not None, f"{req.name} is not locked in constraints/cpu.txt"
        assert req.specifier.contains(version), f"the lock's {req.name} {version} is not {req}"


def test_the_league_extra_keeps_the_cpu_torch() -> None:
    """The league extra names no torch; what its packages ask of torch (Axelrod: >= 2.6) the
    locked CPU build meets, so `pip install -c constraints/cpu.txt '.[league]'` keeps it; and
    the Makefile's test set-up installs it."""
    from importlib.metadata import requires

    assert "torch" not in {canonicalize_name(r.name) for r in requirements("league")}
    torch = pins(CONSTRAINTS / "cpu.txt")["torch"]
    asked = [
        Requirement(text)
        for package in ("axelrod", "openskill", "nashpy")
        for text in requires(package) or []
        if canonicalize_name(Requirement(text).name) == "torch"
    ]
    assert asked and all(r.specifier.contains(torch, prereleases=True) for r in asked)
    assert "'.[dev,league,tracking,pettingzoo]'" in (ROOT / "Makefile").read_text()


def test_the_declared_low_end_is_the_tested_one() -> None:
    """constraints/low.txt is the environment the tests ran in at the low end: every declared
    lower bound is installed there exactly (a bound moved without a new test run fails)."""
    low = pins(CONSTRAINTS / "low.txt")
    for req in requirements("dev", "ray"):
        bounds = [Version(s.version) for s in req.specifier if s.operator in (">=", "==")]
        assert len(bounds) == 1, f"{req} has no single lower bound"
        assert low.get(canonicalize_name(req.name)) == bounds[0], (
            f"{req}: the low end was not tested (constraints/low.txt has "
            f"{low.get(canonicalize_name(req.name))})"
        )


def test_every_install_in_the_makefile_uses_the_lock() -> None:
    """`make` keeps the CPU path exact: each pip install that resolves goes through the lock."""
    lines = [
        line.strip()
        for line in (ROOT / "Makefile").read_text().splitlines()
        if re.search(r"pip install", line)
    ]
    assert len(lines) == 4
    for line in lines:
        assert "-c $(LOCK)" in line or "--no-deps" in line, line
    assert "LOCK    := constraints/cpu.txt" in (ROOT / "Makefile").read_text()


def test_the_tracking_extra_keeps_the_cpu_torch_and_is_installed_for_tests() -> None:
    """The tracking extra (TensorBoard) names no torch, is locked, and `make test` installs it
    (tests/train/test_tracking.py reads its event files)."""
    core = {canonicalize_name(r.name) for r in requirements()}
    names = {canonicalize_name(r.name) for r in requirements("tracking")} - core
    assert names == {"tensorboard"}
    assert "tensorboard" in pins(CONSTRAINTS / "cpu.txt")
    assert "'.[dev,league,tracking,pettingzoo]'" in (ROOT / "Makefile").read_text()
