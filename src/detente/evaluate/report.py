"""Self-contained HTML reports: training curves, face-off heatmap, sample transcripts (per round:
every player's hidden and public state, moves and rewards, then the replies in order; a game of
one move per player a round and no messages, such as the IPD, on one line per player).

Images are embedded as base64 PNGs, and also written as files into the report's own folder
(``NAME-plots/`` beside ``NAME.html``), so two reports never overwrite each other's plots. Plot
titles say what is plotted and of whom; reward plots carry the game's declared reference lines.
A page of more than ``INDEX_OVER`` games opens with an index linking to each. Every value that
comes from a file (replies, agent names, seeds, infos, face-off cells, config) goes through
``html.escape`` — not only the text fields — and transcripts are validated on load (types and
shape), so a record holding ``<script>`` anywhere is shown or refused, never run.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError, model_validator

from detente.config import ConfigError, RunConfig, read_yaml, validate
from detente.evaluate.plots import curve_keys, curve_title, plot_curves, plot_heatmap
from detente.games import Kind, game_type
from detente.games.base import GameInfo, player_name
from detente.games.ipd import Move
from detente.games.items import ITEM_TYPES
from detente.games.registry import GameEntry, game_entry, game_names
from detente.rollout.records import GameRecord, RecordError, Turn, read_records

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
h1,h2{font-weight:600} .grid{display:flex;flex-wrap:wrap;gap:8px}
.grid img{width:360px;border:1px solid #ddd} table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right} th{background:#f4f4f4}
.game{border:1px solid #ccc;border-radius:6px;padding:8px 12px;margin:12px 0}
.turn{margin:4px 0;font-size:13px;white-space:pre-wrap} .who{font-weight:600}
.invalid{color:#b00} .note{color:#06c} .facts{color:#666;font-size:13px;margin:2px 0 6px}
td.moves{font-family:ui-monospace,monospace;white-space:pre;text-align:left}
.toc td{text-align:left} .toc td.num{text-align:right}
"""

# A transcript page of more games than this opens with an index linking to each.
INDEX_OVER = 10


SAMPLE_NOTE = (
    "Each round's table shows what the players held, including what the other could not see "
    "(Trust-and-Split hands, Deal or No Deal values), their moves and rewards; the replies follow "
    "in the order they were made. A game of one move per player a round and no messages (e.g. "
    "the IPD) is shown on one line per player, round by round: hover a move for its round's "
    "reward and reply; * marks an invalid reply, replaced by the default move."
)


def plots_dir(page: Path) -> Path:
    """The folder of a report's plot files: ``NAME-plots`` beside ``NAME.html`` (one folder per
    report, so reports written side by side keep their own plots)."""
    return page.with_name(f"{page.stem}-plots")


def run_config(run_dir: Path) -> RunConfig | None:
    """The run's saved config; None where there is none or it no longer validates (the report
    then shows the curves without the game's titles and reference lines)."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    try:
        return validate(read_yaml(path))
    except ConfigError:
        return None


def run_subject(config: RunConfig) -> str:
    """Whose curves a run's plots show: ``GAME · METHOD sSEED`` (and the frozen opponent)."""
    against = f" vs {config.train.opponent}" if config.train.opponent else ""
    return f"{config.game.name} · {config.train.method.value} s{config.seed}{against}"


def game_info(config: RunConfig) -> GameInfo:
    """The metadata of the run's game under its options (e.g. the payoffs)."""
    return game_type(config.game.name).describe(config.game.game_config())


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The metrics lines of a run: JSON objects with an integer ``iteration``. A last line cut
    off by a crash mid-append is left out; a damaged line elsewhere is an error naming it."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    out = []
    for number, line in enumerate(lines, start=1):
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # torn by a crash (e.g. a full disk) mid-append
                break
            raise ValueError(f"{path}, line {number}: not JSON") from None
        if not isinstance(data, dict) or type(data.get("iteration")) is not int:
            raise ValueError(f"{path}, line {number}: not a metrics line (no integer iteration)")
        out.append(data)
    return out


def img_tag(path: Path, alt: str | None = None) -> str:
    """The PNG at ``path`` embedded; ``alt`` says what it shows (default: the file's stem)."""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt or path.stem)}">'


def html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _text(value: Any) -> str:
    """Plain text of an info value: numbers to 2 decimals, item bundles with their type names."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{round(value, 2):g}"
    if isinstance(value, list) and len(value) == len(ITEM_TYPES):
        return ", ".join(f"{name} {_text(v)}" for name, v in zip(ITEM_TYPES, value, strict=True))
    return str(value)


def _entry(game: str) -> GameEntry | None:
    """The registration of a record's game; None for a game not registered here (its
    transcript shows rewards and replies only)."""
    return game_entry(game) if game in game_names() else None


def _per_player(info: dict[str, Any], key: str, players: int) -> list[Any]:
    """Every player's entry of ``info[key]``, in words where the info holds codes (as stored
    where it does not)."""
    value = info[key]
    if key == "upper":
        return ["upper" if value == p else "lower" for p in range(players)]
    entries = list(value) if isinstance(value, list) else [value]
    entries += [""] * (players - len(entries))
    if key == "moves":
        return [Move(m).name.lower() if m in Move._value2member_map_ else m for m in entries]
    return entries


def _player_name(value: Any, players: int) -> str:
    return player_name(value) if type(value) is int and 0 <= value < players else str(value)


def _fact_text(info: dict[str, Any], key: str, players: int) -> str:
    """A round-wide fact in words (the opener by name)."""
    return _player_name(info[key], players) if key == "opener" else _text(info[key])


def round_table(record: GameRecord, r: int) -> str:
    """Round ``r``'s state per player (hand and whose is upper, values, move, claim or proposal,
    what each received, reward), then the round-wide facts (opener, stock, deal)."""
    info = record.infos[r]
    n = record.num_players
    entry = _entry(record.game)
    shown, facts_shown = (entry.columns, entry.facts) if entry is not None else ({}, {})
    columns = {label: _per_player(info, key, n) for key, label in shown.items() if key in info}
    columns["reward"] = list(record.rewards[r])
    rows = [
        [player_name(p), *(_text(values[p]) for values in columns.values())] for p in range(n)
    ]
    facts = [
        f"{label}: {_fact_text(info, key, n)}"
        for key, label in facts_shown.items()
        if key in info
    ]
    return html_table(["player", *columns], rows) + (
        f"<div class='facts'>{html.escape(' · '.join(facts))}</div>" if facts else ""
    )


def _round_turns(record: GameRecord, r: int) -> list[tuple[Turn, int]]:
    """Round ``r``'s decisions with their player, in the order made: the messages in seat order
    from the opener, then the moves."""
    opener, n = record.infos[r].get("opener", 0), record.num_players
    opener = opener if type(opener) is int else 0  # infos are free-form: no opener, seat order
    keyed = [
        ((turn.kind == Kind.MOVE, index, (seat.player - opener) % n), turn, seat.player)
        for seat in record.seats
        for index, turn in enumerate(t for t in seat.turns if t.round == r)
    ]
    return [(turn, player) for _, turn, player in sorted(keyed, key=lambda item: item[0])]


def _mark(record: GameRecord, turn: Turn, player: int) -> str:
    """The flag of an invalid reply, or the game's note on a message (e.g. a hand report)."""
    if turn.invalid:
        kind = html.escape(str(turn.kind))
        return f' <span class="invalid">[invalid: default {kind} used]</span>'
    entry = _entry(record.game)
    notes = entry.turn_note_fn() if entry is not None else None
    try:
        note = notes(record, turn, player) if notes is not None else ""
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        note = ""  # infos of another shape than the game's: no note
    return f' <span class="note">[{html.escape(note)}]</span>' if note else ""


def is_one_line(record: GameRecord) -> bool:
    """Whether the game fits one line per player, read off the record and the registered
    columns (never the game's name): every round holds exactly one move of each seat and no
    message, and a round's table would show nothing per player but that move and the reward
    (at most one registered column) — the IPD, the N-player IPD, public goods; not Split (its
    values and what each received) nor the commons (request and catch)."""
    entry = _entry(record.game)
    if record.num_rounds == 0 or (entry is not None and len(entry.columns) > 1):
        return False
    for seat in record.seats:
        if any(t.kind != Kind.MOVE for t in seat.turns):
            return False
        if sorted(t.round for t in seat.turns) != list(range(record.num_rounds)):
            return False
    return True


def _action_text(action: Any) -> str:
    """A move as shown on a one-line game: ``C``; moves toward several co-players run together
    (``CD``); a number to 2 decimals."""
    if isinstance(action, Enum):
        action = action.value
    if isinstance(action, list | tuple):
        parts = [_action_text(a) for a in action]
        return "".join(parts) if all(len(p) == 1 for p in parts) else "/".join(parts)
    return _text(action)


def one_line_html(record: GameRecord) -> str:
    """The whole game on one line per seat: its moves round by round, as the game's one
    registered column holds and labels them (the move played where it registers none; hover:
    the round's reward and the reply; ``*``: an invalid reply, the default move used) and its
    total; then one line per round-wide fact the game declares. Entries are padded per round,
    so the rounds line up."""
    esc = html.escape
    n = record.num_players
    entry = _entry(record.game)
    columns = dict(entry.columns) if entry is not None else {}
    facts = entry.facts if entry is not None else {}
    key, label = next(iter(columns.items()), (None, "moves"))

    def shown(turn: Turn, player: int) -> str:
        value = record.infos[turn.round].get(key) if key is not None else None
        held = isinstance(value, list) and len(value) == n
        return _action_text(value[player] if held else turn.action)

    rows: list[tuple[str, str, list[tuple[str, str, bool]], str]] = []
    for seat in record.seats:
        cells = []
        for turn in sorted(seat.turns, key=lambda t: t.round):
            reward = _text(record.rewards[turn.round][seat.player])
            tip = f"round {turn.round + 1}: reward {reward}"
            tip += " · invalid reply, the default move used" if turn.invalid else ""
            cells.append((shown(turn, seat.player) + ("*" if turn.invalid else ""),
                          f"{tip} · reply: {turn.reply}", turn.invalid))  # fmt: skip
        total = _text(math.fsum(record.seat_rewards(seat.player)))
        rows.append((player_name(seat.player), seat.agent, cells, total))
    for fact, name in facts.items():
        if all(fact in info for info in record.infos):
            values = [_fact_text(info, fact, n) for info in record.infos]
            rows.append((name, "", [(v, f"round {r + 1}", False) for r, v in
                                    enumerate(values)], ""))  # fmt: skip
    widths = [max(len(row[2][r][0]) for row in rows) for r in range(record.num_rounds)]

    def moves(cells: list[tuple[str, str, bool]]) -> str:
        spans = []
        for (text, tip, invalid), width in zip(cells, widths, strict=True):
            flag = ' class="invalid"' if invalid else ""
            spans.append(f'<span{flag} title="{esc(tip)}">{esc(text)}</span>'
                         + " " * (width - len(text)))  # fmt: skip
        return " ".join(spans)

    head = "".join(f"<th>{esc(h)}</th>" for h in ("player", "agent", label, "total"))
    body = "".join(
        f"<tr><td>{esc(who)}</td><td>{esc(agent)}</td><td class='moves'>{moves(cells)}</td>"
        f"<td>{esc(total)}</td></tr>"
        for who, agent, cells, total in rows
    )
    return f"<table class='line'><tr>{head}</tr>{body}</table>"


def _seats_text(record: GameRecord) -> str:
    return " vs ".join(f"{player_name(s.player)} = {s.agent}" for s in record.seats)


def _totals_text(record: GameRecord) -> str:
    return " / ".join(_text(math.fsum(record.seat_rewards(s.player))) for s in record.seats)


def transcript_html(record: GameRecord, anchor: str | None = None) -> str:
    """One game: on one line per player where it fits (:func:`is_one_line`); else per round,
    the state table (hidden hands or values, moves, rewards), then each seat's replies in order
    (flagged when invalid, with hand reports checked against the truth). ``anchor``: the id an
    index links to (made here, never from the record)."""
    esc = html.escape
    where = f' id="{esc(anchor)}"' if anchor else ""
    parts = [
        f'<div class="game"{where}><b>{esc(record.game)}</b> · seed {esc(str(record.seed))} · '
        f"{esc(_seats_text(record))} · total rewards {esc(_totals_text(record))}"
    ]
    if is_one_line(record):
        parts.append(one_line_html(record))
    else:
        for r in range(record.num_rounds):
            parts.append(f"<h4>Round {r + 1}</h4>{round_table(record, r)}")
            parts.extend(
                f'<div class="turn"><span class="who">{esc(player_name(player))}</span> '
                f"({esc(str(turn.kind))}): {esc(turn.reply)}"
                f"{_mark(record, turn, player)}</div>"
                for turn, player in _round_turns(record, r)
            )
    parts.append("</div>")
    return "\n".join(parts)


def transcripts_html(records: Sequence[GameRecord]) -> list[str]:
    """The games of a page; more than ``INDEX_OVER`` open with an index (game, seed, seats,
    total rewards) linking to each game's anchor ``game-K``."""
    if len(records) <= INDEX_OVER:
        return [transcript_html(r) for r in records]
    esc = html.escape
    rows = "".join(
        f"<tr><td class='num'><a href='#game-{k}'>{k}</a></td><td>{esc(r.game)}</td>"
        f"<td class='num'>{esc(str(r.seed))}</td><td>{esc(_seats_text(r))}</td>"
        f"<td>{esc(_totals_text(r))}</td></tr>"
        for k, r in enumerate(records, start=1)
    )
    index = (
        f"<details open class='toc'><summary>Index of the {len(records)} games</summary><table>"
        "<tr><th>game</th><th>rules</th><th>seed</th><th>seats</th><th>total rewards</th></tr>"
        f"{rows}</table></details>"
    )
    return [index, *(transcript_html(r, f"game-{k}") for k, r in enumerate(records, start=1))]


def _sample_transcripts(run_dir: Path, count: int) -> list[GameRecord]:
    files = (
        sorted((run_dir / "transcripts").glob("*.jsonl.gz"))
        if (run_dir / "transcripts").is_dir()
        else []
    )
    records: list[GameRecord] = []
    for path in files[-1:]:
        try:
            records.extend(read_records(path))
        except RecordError:  # e.g. cut off by a crash: the report goes on without samples
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
    """Write ``report.html`` (and its plots, ``report-plots/*.png``: :func:`plots_dir`) for a
    run directory; returns the HTML path."""
    out = out or run_dir / "report.html"
    plots = plots_dir(out)
    metrics = read_metrics(run_dir)
    config = run_config(run_dir)
    subject = run_subject(config) if config is not None else run_dir.name
    info = game_info(config) if config is not None else None
    body = [f"<h1>{html.escape(title or f'detente report: {run_dir.name}')}</h1>"]
    config_path = run_dir / "config.yaml"
    if config_path.is_file():
        body.append(
            f"<details><summary>config</summary><pre>{html.escape(config_path.read_text())}"
            "</pre></details>"
        )
    if faceoff is None and (run_dir / "faceoff.json").is_file():
        faceoff = read_faceoff(run_dir / "faceoff.json")
    if metrics:
        body.append("<h2>Training curves</h2><div class='grid'>")
        for key in curve_keys(metrics):
            path = plot_curves({run_dir.name: metrics}, key, plots / f"{key}.png",
                               subject=subject, info=info)  # fmt: skip
            body.append(img_tag(path, curve_title(key, subject)))
        body.append("</div>")
    evaluations = eval_html(metrics, plots, subject, info)
    if evaluations:
        body.append(evaluations)
    if faceoff:
        body.append(faceoff_html(faceoff, plots, config.game.name if config else None))
    sample = list(records) if records is not None else _sample_transcripts(run_dir, transcripts)
    if sample:
        body.append(f"<h2>Sample games</h2><p>{SAMPLE_NOTE}</p>")
        body.extend(transcripts_html(sample[:transcripts]))
    out.write_text(html_page("detente report", body), encoding="utf-8")
    return out


def eval_results(metrics: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The evaluations of a run's metrics lines (``eval/BOT/MEASURE`` keys), by bot: one
    ``{"iteration": ..., MEASURE: ...}`` per evaluation, in order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for line in metrics:
        by_bot: dict[str, dict[str, Any]] = {}
        for key, value in line.items():
            kind, _, rest = key.partition("/")
            bot, _, measure = rest.rpartition("/")
            if kind == "eval" and bot:
                by_bot.setdefault(bot, {"iteration": line["iteration"]})[measure] = value
        for bot, entry in by_bot.items():
            out.setdefault(bot, []).append(entry)
    return out


def eval_summary(metrics: Sequence[dict[str, Any]]) -> list[str]:
    """Terminal lines of the last evaluation: per bot, the agent's reward per round (± 95% CI
    half-width over games), the bot's, and the behaviour measures."""
    out = []
    for bot, entries in eval_results(metrics).items():
        last = entries[-1]
        text = ", ".join(
            f"{k} {v:.2f}" for k, v in last.items()
            if k not in ("iteration", "reward", "ci95") and isinstance(v, float)
        )  # fmt: skip
        reward, half = last.get("reward"), last.get("ci95")
        shown = "–" if reward is None else f"{reward:.2f}" + (f" ± {half:.2f}" if half else "")
        out.append(f"  vs {bot} (after iteration {last['iteration'] + 1}): reward {shown}, {text}")
    return out


def eval_html(
    metrics: Sequence[dict[str, Any]], plots: Path, subject: str | None = None,
    info: GameInfo | None = None,
) -> str:  # fmt: skip
    """The evaluation section: reward per round against each bot over iterations (a plot with
    a line per bot and the game's reference lines), and a table of the last evaluation; empty
    without evaluations."""
    results = eval_results(metrics)
    if not results:
        return ""
    what = "reward per round against each bot"
    plot = plot_curves(
        {f"vs {bot}": entries for bot, entries in results.items()}, "reward",
        plots / "eval_reward.png", what, subject=subject, info=info,
    )  # fmt: skip
    measures = sorted({k for es in results.values() for e in es for k in e} - {
        "iteration", "reward", "ci95", "opponent_reward"})  # fmt: skip
    rows = []
    for bot, entries in results.items():
        last = entries[-1]
        reward, half = last.get("reward"), last.get("ci95")
        shown = "–" if reward is None else f"{reward:.2f}" + (
            f" ± {half:.2f}" if half is not None else "")  # fmt: skip
        rows.append([bot, last["iteration"], shown, last.get("opponent_reward", "–"),
                     *(last.get(m, "–") if last.get(m) is not None else "–" for m in measures)])
    return (
        "<h2>Evaluation against bots</h2><p>The live policy against each bot (eval.bots), "
        "eval.games games per seat order, in the prompt style and move rules it trains with; "
        "reward per round of the trained agent ± the 95% confidence half-width over games. "
        "The table holds the last evaluation.</p>"
        + img_tag(plot, curve_title("reward", subject, what))
        + html_table(["bot", "iteration", "reward", "bot's reward", *measures], rows)
    )


def html_page(title: str, body: Sequence[str]) -> str:
    """A complete page around already-escaped ``body`` parts."""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>"
    )


class FaceoffCells(BaseModel):
    """What a report shows of a face-off JSON: a square matrix of numbers per agent."""

    agents: list[str]
    mean_reward: list[list[float | None]]
    ci95: list[list[float | None]]

    @model_validator(mode="after")
    def _square(self) -> FaceoffCells:
        n = len(self.agents)
        for name, matrix in (("mean_reward", self.mean_reward), ("ci95", self.ci95)):
            if len(matrix) != n or any(len(row) != n for row in matrix):
                raise ValueError(f"{name} is not {n} x {n}")
        return self


def read_faceoff(path: Path) -> dict[str, Any]:
    """A face-off JSON (``FaceoffResult.write_json``), checked; errors name the file."""
    try:
        data = json.loads(path.read_text())
        cells = FaceoffCells.model_validate(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not JSON ({error})") from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "face-off"
        raise ValueError(f"{path}: {where}: {first['msg']}") from None
    return {**data, **cells.model_dump()}


def faceoff_html(faceoff: dict[str, Any], plots: Path, subject: str | None = None) -> str:
    """The face-off section: the heatmap (``subject``, e.g. the game, heads its title) and the
    table of every cell with its 95% half-width, under the agents' full names."""
    faceoff = FaceoffCells.model_validate(faceoff).model_dump()
    agents = faceoff["agents"]
    what = curve_title("", subject, "face-off, mean reward per round of the row agent")
    heat = plot_heatmap(agents, faceoff["mean_reward"], plots / "faceoff.png", what)
    rows = [
        [
            a,
            *(
                "–" if m is None else f"{m:.2f} ± {c:.2f}" if c is not None else f"{m:.2f}"
                for m, c in zip(faceoff["mean_reward"][i], faceoff["ci95"][i], strict=True)
            ),
        ]
        for i, a in enumerate(agents)
    ]
    return "<h2>Face-off</h2>" + img_tag(heat, what) + html_table(["row \\ column", *agents], rows)
