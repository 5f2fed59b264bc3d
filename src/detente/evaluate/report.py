"""Self-contained HTML reports: training curves, face-off heatmap, sample transcripts.

Images are embedded as base64 PNGs (also written as files beside the report); every piece of
model or person text goes through ``html.escape``, so a reply holding ``<script>`` is shown,
never run.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detente.evaluate.plots import curve_keys, plot_curves, plot_heatmap
from detente.games import PLAYER_NAMES
from detente.rollout.records import GameRecord, read_records

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
h1,h2{font-weight:600} .grid{display:flex;flex-wrap:wrap;gap:8px}
.grid img{width:360px;border:1px solid #ddd} table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right} th{background:#f4f4f4}
.game{border:1px solid #ccc;border-radius:6px;padding:8px 12px;margin:12px 0}
.turn{margin:4px 0;font-size:13px;white-space:pre-wrap} .who{font-weight:600}
.invalid{color:#b00} .prompt{color:#666}
"""


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def img_tag(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.stem)}">'


def html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def transcript_html(record: GameRecord) -> str:
    """One game: per round, each seat's prompts, replies (flagged when invalid) and rewards."""
    seats = " vs ".join(
        f"{PLAYER_NAMES[s.player]} = {html.escape(s.agent)}" for s in record.seats
    )
    parts = [f'<div class="game"><b>{html.escape(record.game)}</b> · seed {record.seed} · {seats}']
    for r in range(record.num_rounds):
        info = record.infos[r]
        details = ", ".join(f"{k}: {html.escape(json.dumps(v))}" for k, v in info.items()
                            if k not in ("rewards",))
        parts.append(f"<h4>Round {r + 1} — rewards {record.rewards[r][0]:g} / "
                     f"{record.rewards[r][1]:g}</h4><div class='prompt'>{details}</div>")
        turns = sorted(
            ((t, s.player) for s in record.seats for t in s.turns if t.round == r),
            key=lambda tp: (0 if tp[0].kind == "message" else 1),
        )
        for turn, player in turns:
            flag = ' <span class="invalid">[invalid: default move used]</span>' if turn.invalid else ""
            parts.append(
                f'<div class="turn"><span class="who">{PLAYER_NAMES[player]}</span> '
                f"({html.escape(str(turn.kind))}): {html.escape(turn.reply)}{flag}</div>"
            )
    parts.append("</div>")
    return "\n".join(parts)


def _sample_transcripts(run_dir: Path, count: int) -> list[GameRecord]:
    files = sorted((run_dir / "transcripts").glob("*.jsonl.gz")) if (run_dir / "transcripts").is_dir() else []
    records: list[GameRecord] = []
    for path in files[-1:]:
        try:
            records.extend(read_records(path))
        except (OSError, gzip.BadGzipFile, json.JSONDecodeError):
            continue
    return records[:count]


def write_report(
    run_dir: Path,
    out: Path | None = None,
    faceoff: dict[str, Any] | None = None,
    records: Sequence[GameRecord] | None = None,
    title: str | None = None,
    transcripts: int = 4,
) -> Path:
    """Write ``report.html`` (and ``plots/*.png``) for a run directory; returns the HTML path."""
    out = out or run_dir / "report.html"
    plots = out.parent / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    metrics = read_metrics(run_dir)
    body = [f"<h1>{html.escape(title or f'detente report: {run_dir.name}')}</h1>"]
    config_path = run_dir / "config.yaml"
    if config_path.is_file():
        body.append(f"<details><summary>config</summary><pre>{html.escape(config_path.read_text())}"
                    "</pre></details>")
    if metrics:
        body.append("<h2>Training curves</h2><div class='grid'>")
        for key in curve_keys(metrics):
            body.append(img_tag(plot_curves({run_dir.name: metrics}, key, plots / f"{key}.png")))
        body.append("</div>")
    if faceoff is None and (run_dir / "faceoff.json").is_file():
        faceoff = json.loads((run_dir / "faceoff.json").read_text())
    if faceoff:
        body.append(faceoff_html(faceoff, plots))
    sample = list(records) if records is not None else _sample_transcripts(run_dir, transcripts)
    if sample:
        body.append("<h2>Sample games</h2>")
        body.extend(transcript_html(r) for r in sample[:transcripts])
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>detente report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>")
    out.write_text(page, encoding="utf-8")
    return out


def faceoff_html(faceoff: dict[str, Any], plots: Path) -> str:
    agents = faceoff["agents"]
    heat = plot_heatmap(agents, faceoff["mean_reward"], plots / "faceoff.png",
                        "mean reward per round of the row agent")
    rows = [
        [a, *(f"{m:.2f} ± {c:.2f}" if c is not None else f"{m:.2f}"
              for m, c in zip(faceoff["mean_reward"][i], faceoff["ci95"][i], strict=True))]
        for i, a in enumerate(agents)
    ]
    return ("<h2>Face-off</h2>" + img_tag(heat)
            + html_table(["row \\ column", *agents], rows))
