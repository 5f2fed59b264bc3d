"""Comparing runs: their curves overlaid, a start → end table per run, their configs diffed
(``detente compare RUN RUN ...``)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detente.evaluate.plots import curve_keys, plot_curves
from detente.evaluate.report import html_page, html_table, img_tag, read_metrics

# The measures of the start → end table, where the runs have them.
TABLE_KEYS = ("reward", "opponent_reward", "collective_reward", "coop_rate", "honesty",
              "efficiency", "agreement_rate", "invalid_rate")  # fmt: skip


@dataclass
class Comparison:
    labels: list[str]  # one per run: the shortest distinct tail of its path
    metrics: dict[str, list[dict[str, Any]]]  # label -> metrics lines
    differences: dict[str, list[Any]]  # dotted config key -> value per run (only where differ)

    def table_rows(self) -> list[list[Any]]:
        """Per run and measure: the first and the last iteration's value."""
        rows = []
        for label in self.labels:
            lines = self.metrics[label]
            if not lines:
                rows.append([label, "no iterations", "–", "–", "–"])
                continue
            first, last = lines[0], lines[-1]
            for key in TABLE_KEYS:
                a, b = first.get(key), last.get(key)
                if isinstance(a, int | float) or isinstance(b, int | float):
                    rows.append([label, key, _fmt(a), _fmt(b), f"{first['iteration'] + 1} → "
                                 f"{last['iteration'] + 1}"])  # fmt: skip
        return rows

    def text(self) -> str:
        """The terminal form: the start → end table and the config differences."""
        rows = self.table_rows()
        widths = [max(len(str(r[i])) for r in [TABLE_HEAD, *rows]) + 2 for i in range(5)]
        lines = ["".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                 for r in [TABLE_HEAD, *rows]]  # fmt: skip
        if self.differences:
            lines += ["", "config differences:"]
            for key, values in self.differences.items():
                shown = ", ".join(f"{label} {v!r}" for label, v in
                                  zip(self.labels, values, strict=True))  # fmt: skip
                lines.append(f"  {key}: {shown}")
        else:
            lines += ["", "the configs are the same"]
        return "\n".join(lines)


TABLE_HEAD = ["run", "measure", "start", "end", "iterations"]


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "–"


def run_labels(run_dirs: Sequence[Path]) -> list[str]:
    """The shortest tails of the paths (1, 2, ... parts) that tell the runs apart."""
    parts = [p.resolve().parts for p in run_dirs]
    for n in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-n:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in run_dirs]


def config_differences(configs: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """Dotted keys whose values differ between the configs (a key one lacks: None there)."""
    flat = [_flatten(c) for c in configs]
    keys = sorted({k for f in flat for k in f})
    return {k: [f.get(k) for f in flat] for k in keys if len({repr(f.get(k)) for f in flat}) > 1}


def _flatten(data: Any, key: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{key}.{k}" if key else str(k)))
        return out
    return {key: data}


def compare_runs(run_dirs: Sequence[Path]) -> Comparison:
    """Read the runs (each must hold a config.yaml); errors name the folder."""
    from detente.agents import run_config_of

    if len(run_dirs) < 2:
        raise ValueError("compare needs at least two run directories")
    configs = [run_config_of(d).model_dump(mode="json") for d in run_dirs]
    labels = run_labels(run_dirs)
    metrics = {label: read_metrics(d) for label, d in zip(labels, run_dirs, strict=True)}
    return Comparison(labels, metrics, config_differences(configs))


def write_comparison(comparison: Comparison, out: Path) -> Path:
    """``out/compare.html`` with the overlaid curves (``out/plots/``); returns its path."""
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    body = [f"<h1>detente: {html.escape(' vs '.join(comparison.labels))}</h1>"]
    body.append("<h2>Start → end</h2>" + html_table(TABLE_HEAD, comparison.table_rows()))
    body.append("<h2>Config differences</h2>")
    if comparison.differences:
        rows = [[k, *map(str, v)] for k, v in comparison.differences.items()]
        body.append(html_table(["key", *comparison.labels], rows))
    else:
        body.append("<p>The configs are the same.</p>")
    body.append("<h2>Curves</h2><div class='grid'>")
    every = [line for lines in comparison.metrics.values() for line in lines]
    for key in curve_keys(every):
        path = plot_curves(comparison.metrics, key, plots / f"{key}.png")
        body.append(img_tag(path))
    body.append("</div>")
    page = out / "compare.html"
    page.write_text(html_page("detente compare", body), encoding="utf-8")
    return page
