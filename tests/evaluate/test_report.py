"""HTML reports: self-contained, plots written (each report's into its own folder), hostile model
text escaped, every round's hidden state (hands, values), moves and rewards shown; one-line games,
an index on large pages, plot titles that say what and whose (issue 17, point 13). Pages are read
with ``html.parser`` (tags, attributes, table cells)."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from unittest import mock

import pytest

from detente.cli import main
from detente.config import dump_config, load_config
from detente.evaluate import plots
from detente.evaluate.faceoff import faceoff
from detente.evaluate.plots import plot_heatmap
from detente.evaluate.report import (
    is_one_line,
    read_metrics,
    transcript_html,
    transcripts_html,
    write_report,
)
from detente.games import make_config, make_game
from detente.games.items import ITEM_TYPES
from detente.games.trust_split import Hand, beater
from detente.policies.base import Policy, Reply
from detente.policies.bots import make_bot
from detente.protocol import make_protocol
from detente.rollout.records import GameRecord, RecordError, read_records, write_records
from detente.rollout.runner import InvalidReplyConfig, Match, play

SCRIPT = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'
HOSTILE = f"<<message_start>> I have rock {SCRIPT} <<message_end>>"


class Hostile(Policy):
    name = "hostile <script>alert(2)</script>"

    def act(self, requests):
        return [Reply(HOSTILE if r.kind == "message" else "<script>x</script>") for r in requests]


class Page(HTMLParser):
    """The tags and attributes of a page, and its tables as rows of cell texts."""

    def __init__(self, page: str):
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.tables: list[list[list[str]]] = []
        self.in_cell = False
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.tables[-1][-1].append("")
            self.in_cell = True

    def handle_endtag(self, tag):
        self.in_cell = self.in_cell and tag not in ("td", "th")

    def handle_data(self, data):
        if self.in_cell:
            self.tables[-1][-1][-1] += data


def is_one_line_table(table: list[list[str]]) -> bool:
    """A one-line game's table: player, agent, the moves (under the game's label), total."""
    return len(table[0]) == 4 and table[0][:2] == ["player", "agent"] and table[0][3] == "total"


def rounds(page: Page) -> list[list[dict[str, str]]]:
    """Each round table as its player rows, keyed by column header (one-line games and the
    index left out)."""
    return [
        [dict(zip(table[0], row, strict=True)) for row in table[1:]]
        for table in page.tables
        if not is_one_line_table(table) and table[0][0] != "game"
    ]


def one_line_games(page: Page) -> list[list[dict[str, str]]]:
    """Each one-line game as its rows (one per seat, then one per round-wide fact), the moves
    under ``moves`` and the game's label of them under ``label``."""
    return [
        [{**dict(zip(table[0], row, strict=True)), "moves": row[2], "label": table[0][2]}
         for row in table[1:]]
        for table in page.tables
        if is_one_line_table(table)
    ]  # fmt: skip


def number(x: float) -> str:
    return f"{round(x, 2):g}"


def items(counts: list[float]) -> str:
    return ", ".join(f"{n} {number(c)}" for n, c in zip(ITEM_TYPES, counts, strict=True))


def check_safe(page: Page) -> None:
    assert "script" not in page.tags
    assert not any(name.startswith("on") for name, _ in page.attrs)


def test_report_escapes_model_text(tmp_path):
    game = make_game("trust-split", None, 0)
    records = play(
        [Match(game, (Hostile(), make_bot("trust-split", "honest")), "g")],
        make_protocol("trust-split"),
        InvalidReplyConfig(free_retries=0),
    )
    run = tmp_path / "run"
    (run / "transcripts").mkdir(parents=True)
    write_records(run / "transcripts" / "iter-000000.jsonl.gz", records)
    (run / "metrics.jsonl").write_text(
        "".join(
            json.dumps({"iteration": i, "reward": 0.1 * i, "loss": 1.0 / (i + 1)}) + "\n"
            for i in range(5)
        )
    )
    text = write_report(run).read_text()
    page = Page(text)
    check_safe(page)
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in text
    assert "hostile &lt;script&gt;alert(2)&lt;/script&gt;" in text
    assert "[invalid: default move used]" in text
    assert (run / "report-plots" / "reward.png").stat().st_size > 1000
    assert page.tags.count("img") == 2  # two curves, embedded
    # the hostile message is read for its hand report, checked against the hand Alice held
    (record,) = records
    for info, table in zip(record.infos, rounds(page), strict=True):
        assert [row["hand"] for row in table] == info["hands"]
    held = record.infos[0]["hands"][0]
    report = "true" if held == "rock" else f"false, holds {held}"
    assert f"[reports rock: {report}]" in text


def play_bots(game: str, bots: tuple[str, str], seed: int) -> GameRecord:
    config = make_config(game, {"rounds": 4})
    match = Match(
        make_game(game, config, seed), (make_bot(game, bots[0]), make_bot(game, bots[1])), "g"
    )
    (record,) = play([match], make_protocol(game, config=config))
    return record


def test_trust_split_report_shows_hands_claims_and_rewards(tmp_path):
    record = play_bots("trust-split", ("liar", "honest"), 1)  # a seed where Alice lies
    text = write_report(tmp_path, tmp_path / "r.html", records=[record]).read_text()
    tables = rounds(Page(text))
    assert len(tables) == record.num_rounds == 4
    for r, (info, table) in enumerate(zip(record.infos, tables, strict=True)):
        for p, row in enumerate(table):
            assert row["player"] == ("Alice", "Bob")[p]
            assert row["hand"] == info["hands"][p]
            assert row["position"] == ("upper" if info["upper"] == p else "lower")
            assert row["value per unit"] == number(info["values"][p])
            assert row["claim (coins)"] == str(info["claims"][p])
            assert row["reward"] == number(record.rewards[r][p])
    # hand reports, checked: the honest bot's are true; the liar (Alice) answers with the hand
    # that beats the one Bob reported, unless it opens the chat
    lies = 0
    for info in record.infos:
        held, other = info["hands"]
        assert f"[reports {other}: true]" in text
        said = held if info["opener"] == 0 else beater(Hand(other)).value
        lies += said != held
        assert f"[reports {said}: {'true' if said == held else f'false, holds {held}'}]" in text
    assert lies > 0


def test_split_report_shows_values_proposals_and_rewards(tmp_path):
    record = play_bots("split", ("greedy", "welfare"), 0)
    text = write_report(tmp_path, tmp_path / "r.html", records=[record]).read_text()
    tables = rounds(Page(text))
    assert len(tables) == 4
    for r, (info, table) in enumerate(zip(record.infos, tables, strict=True)):
        for p, row in enumerate(table):
            assert row["value per unit"] == items(info["values"][p])
            assert row["proposal (keeps)"] == items(info["proposals"][p])
            assert row["received"] == items(info["units"][p])
            assert row["reward"] == number(record.rewards[r][p])
        assert f"efficiency: {number(info['efficiency'])}" in text


def test_dond_report_shows_private_values_stock_and_deal(tmp_path):
    record = play_bots("dond", ("fair", "greedy"), 0)
    text = write_report(tmp_path, tmp_path / "r.html", records=[record]).read_text()
    for r, (info, table) in enumerate(zip(record.infos, rounds(Page(text)), strict=True)):
        for p, row in enumerate(table):
            assert row["value per unit"] == items(info["values"][p])
            assert row["proposal (keeps)"] == items(info["proposals"][p])
            assert row["reward"] == number(record.rewards[r][p])
        deal = "yes" if info["agreed"] else "no"
        assert f"stock: {items(info['stock'])} · deal: {deal}" in text


def test_human_trust_split_transcript_renders(tmp_path):
    path = tmp_path / "human.jsonl.gz"
    message = f"I have paper {SCRIPT}"
    play = subprocess.run(
        [sys.executable, "-m", "detente.cli", "play", "--game", "trust-split", "--opponent",
         "bot:honest", "--transcript", str(path)],
        input=f"{message}\n4\n" * 10, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert play.returncode == 0, play.stderr
    (record,) = read_records(path)
    proc = subprocess.run(
        [sys.executable, "-m", "detente.cli", "report", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "wrote" in proc.stdout
    text = (tmp_path / "human.html").read_text()
    page = Page(text)
    check_safe(page)
    assert text.count("I have paper &lt;script&gt;") == record.num_rounds == 10
    for r, (info, table) in enumerate(zip(record.infos, rounds(page), strict=True)):
        assert [row["hand"] for row in table] == info["hands"]
        assert table[0]["claim (coins)"] == "4"
        assert [row["reward"] for row in table] == [number(x) for x in record.rewards[r]]


def test_faceoff_outputs_and_bot_transcript_report(tmp_path):
    agents = [make_bot("ipd", n) for n in ("tit-for-tat", "always-defect")]
    result, records = faceoff("ipd", agents, make_protocol("ipd"), 3)
    result.write_csv(tmp_path / "f.csv")
    lines = (tmp_path / "f.csv").read_text().splitlines()
    assert lines[0].startswith("row,column,mean_reward,ci95,coop_rate")
    assert len(lines) == 5
    assert result.measures["coop_rate"][0][1] == 0.1  # tit-for-tat cooperates once vs defector
    path = tmp_path / "games.jsonl.gz"
    write_records(path, records[:1])
    proc = subprocess.run(
        [sys.executable, "-m", "detente.cli", "report", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "wrote" in proc.stdout
    page = Page((tmp_path / "games.html").read_text())
    assert rounds(page) == []  # the IPD: one line per player, not a table per round
    (game,) = one_line_games(page)
    assert [(row["player"], row["agent"]) for row in game] == [
        ("Alice", "bot:tit-for-tat"), ("Bob", "bot:tit-for-tat")]  # fmt: skip
    assert all(row["moves"].split() == ["C"] * 10 for row in game)
    assert all(row["total"] == "30" for row in game)
    assert not (tmp_path / "games-plots").exists()  # nothing plotted, no plot folder


def test_report_of_a_trained_run(trained_ipd_run, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", str(trained_ipd_run), "--out", str(out)]) == 0
    page = Page(out.read_text())
    assert (tmp_path / "report-plots" / "reward.png").is_file() and page.tags.count("img") > 3
    game = list(read_records(trained_ipd_run / "transcripts" / "iter-000001.jsonl.gz"))[0]
    shown = one_line_games(page)[0]
    moves = [row["moves"].replace("*", "").split() for row in shown]
    assert moves == [[info["moves"][p] for info in game.infos] for p in range(2)]
    assert [row["agent"] for row in shown] == [seat.agent for seat in game.seats]


# ---- hostile files (issue 19) ----------------------------------------------------------------


def _ipd_record_json() -> dict:
    return json.loads(json.dumps(play_bots("ipd", ("tit-for-tat", "grim"), 0).to_json()))


def _write_lines(path, lines: list[dict]) -> None:
    import gzip

    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)


def test_a_transcript_with_markup_in_a_typed_field_is_refused_on_load(tmp_path, capsys):
    data = _ipd_record_json()
    path = tmp_path / "t.jsonl.gz"
    _write_lines(path, [data, {**data, "seed": SCRIPT}])
    with pytest.raises(RecordError, match=r"t\.jsonl\.gz, line 2: seed: Input should be"):
        list(read_records(path))
    assert main(["report", str(path)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "t.jsonl.gz, line 2: seed" in line and "<script" not in line
    assert not (tmp_path / "t.html").exists()
    for change in [
        {"num_rounds": 11},  # one reward and one info per round
        {"seats": [data["seats"][1], data["seats"][0]]},  # seats in player order
        {"rewards": [["x", 1]] * 10},
    ]:
        _write_lines(path, [{**data, **change}])
        with pytest.raises(RecordError, match="line 1"):
            list(read_records(path))


def test_every_field_of_a_record_is_escaped_not_only_the_text(tmp_path):
    data = _ipd_record_json()
    data["game"] = SCRIPT
    data["game_id"] = SCRIPT
    data["seats"][0]["agent"] = SCRIPT
    for info in data["infos"]:  # infos are free-form: every value is shown escaped
        info["moves"] = [SCRIPT, 0]
        info["opener"] = SCRIPT
        info["agreed"] = SCRIPT
    data["seats"][0]["turns"][0]["action"] = SCRIPT
    record = GameRecord.from_json(data)
    text = transcript_html(record)
    check_safe(Page(text))
    assert "&lt;script&gt;" in text


def test_a_faceoff_json_is_checked_and_escaped(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    agents = [SCRIPT, "api:m$x$@http://h/v1", r"bot:$\frac$"]
    cells = [[1.0, None, 2.0], [0.5, 1.5, None], [0.0, 3.0, 1.0]]
    (run / "faceoff.json").write_text(
        json.dumps({"agents": agents, "mean_reward": cells, "ci95": cells})
    )
    check_safe(Page(write_report(run).read_text()))  # the heatmap renders the '$' names
    (run / "faceoff.json").write_text(
        json.dumps({"agents": agents, "mean_reward": [[SCRIPT] * 3] * 3, "ci95": cells})
    )
    with pytest.raises(ValueError, match=r"faceoff\.json: mean_reward\.0\.0"):
        write_report(run)


def test_a_truncated_transcript_or_metrics_line_is_handled(tmp_path, capsys):
    path = tmp_path / "cut.jsonl.gz"
    write_records(path, [play_bots("ipd", ("grim", "grim"), 0)] * 3)
    path.write_bytes(path.read_bytes()[:-20])
    assert main(["report", str(path)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert str(path) in line and "cannot read the transcript" in line
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"iteration": 0, "reward": 1.0}\n{"iteration": 1, "rew')
    assert [m["iteration"] for m in read_metrics(run)] == [0]  # a torn last line is left out


def test_a_heatmap_of_agent_names_with_dollars_renders(tmp_path):
    names = ["api:m$x$@http://h/v1", r"bot:$\frac{$", "run:a$b"]
    path = plot_heatmap(names, [[1.0] * 3] * 3, tmp_path / "h.png", "cost in $ and $$")
    assert path.stat().st_size > 1000


# ---- report polish (issue 17, point 13) ------------------------------------------------------

MOVES = "moves"


def played(game: str, bots: list[str], seed: int = 0, length: int = 4, **options) -> GameRecord:
    config = make_config(game, {"rounds": length, **options})
    lineup = tuple(make_bot(game, b) for b in bots)
    (record,) = play([Match(make_game(game, config, seed), lineup, "g")],
                     make_protocol(game, config=config))  # fmt: skip
    return record


def page_of(records: list[GameRecord]) -> tuple[str, Page]:
    text = "".join(transcripts_html(records))
    page = Page(text)
    check_safe(page)
    return text, page


def test_an_ipd_game_is_one_line_per_player_with_invalid_moves_marked():
    config = make_config("ipd", {"rounds": 5})
    (record,) = play(
        [Match(make_game("ipd", config, 0), (Hostile(), make_bot("ipd", "tit-for-tat")), "g")],
        make_protocol("ipd", config=config), InvalidReplyConfig(free_retries=0),
    )  # fmt: skip
    assert all(t.invalid for t in record.seats[0].turns)
    text, page = page_of([record])
    assert rounds(page) == []  # no table per round
    ((alice, bob),) = one_line_games(page)
    assert (alice["player"], alice["agent"]) == ("Alice", Hostile.name)
    assert (bob["player"], bob["agent"]) == ("Bob", "bot:tit-for-tat")
    assert alice["label"] == "move"  # as the game's registration labels its one column
    assert alice[MOVES].split() == [f"{info['moves'][0]}*" for info in record.infos]
    assert bob[MOVES].split() == [info["moves"][1] for info in record.infos]
    assert bob["total"] == f"{sum(record.seat_rewards(1)):g}"
    assert text.count('class="invalid"') == 5  # Alice's five moves, flagged
    # the replies are in the moves' titles, escaped
    assert "reply: &lt;script&gt;x&lt;/script&gt;" in text
    assert "hostile &lt;script&gt;alert(2)&lt;/script&gt;" in text


def test_one_line_is_read_off_the_record_not_the_game_name():
    multi = played("multi-ipd", ["tit-for-tat", "always-defect", "alternator"], length=3)
    assert is_one_line(multi)
    _, page = page_of([multi])
    (game,) = one_line_games(page)
    assert [row[MOVES].split() for row in game] == [
        [info["moves"][p] for info in multi.infos] for p in range(3)]  # fmt: skip
    goods = played("public-goods", ["conditional"] * 4)
    _, page = page_of([goods])
    (game,) = one_line_games(page)
    assert [row["player"] for row in game] == ["Alice", "Bob", "Carol", "Dave", "pot", "share each"]
    assert game[0]["label"] == "contribution"
    assert game[4][MOVES].split() == [str(info["pot"]) for info in goods.infos]
    # with messages, private state or a round missing a move: a table per round
    chatty = played("public-goods", ["conditional"] * 4, messages_per_player=1)
    split = played("split", ["greedy", "welfare"])
    commons = played("commons", ["sustainable"] * 5, length=2)
    gap = GameRecord.from_json(played("ipd", ["grim", "grim"]).to_json())
    gap.seats[1].turns.pop(2)
    for record in (chatty, split, commons, gap):
        assert not is_one_line(record)
        _, page = page_of([record])
        assert one_line_games(page) == [] and len(rounds(page)) == record.num_rounds


def test_a_large_page_opens_with_an_index_linking_to_each_game():
    records = [played("ipd", ["tit-for-tat", "grim"], seed=s, length=2) for s in range(11)]
    records[3].seats[0].agent = SCRIPT
    text, page = page_of(records)
    index = [t for t in page.tables if t[0][0] == "game"]
    assert len(index) == 1 and text.index("Index of the 11 games") < text.index('class="game"')
    (table,) = index
    assert [row[0] for row in table[1:]] == [str(k) for k in range(1, 12)]
    assert [row[2] for row in table[1:]] == [str(r.seed) for r in records]
    assert table[4][3] == f"Alice = {SCRIPT} vs Bob = bot:grim"  # read back unescaped: shown
    assert table[1][4] == " / ".join(f"{sum(records[0].seat_rewards(p)):g}" for p in (0, 1))
    links = [value for name, value in page.attrs if name == "href"]
    ids = [value for name, value in page.attrs if name == "id"]
    assert links == [f"#game-{k}" for k in range(1, 12)]
    assert sorted(ids) == sorted(link[1:] for link in links)  # each link has one target
    _, small = page_of(records[:10])
    assert not [t for t in small.tables if t[0][0] == "game"]
    assert not [value for name, value in small.attrs if name in ("href", "id")]
    assert all(is_one_line_table(t) for t in small.tables)


def make_run(path, preset: str, overrides: list[str], iterations: int = 3) -> None:
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(dump_config(load_config(preset, overrides)))
    lines = [
        {"iteration": i, "reward": 2.0 + 0.1 * i, "opponent_reward": 2.0, "coop_rate": 0.5,
         "eval/always-defect/reward": 0.8, "eval/always-defect/ci95": 0.1}
        for i in range(iterations)
    ]  # fmt: skip
    (path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def alts(text: str) -> list[str]:
    return [value for name, value in Page(text).attrs if name == "alt"]


def test_run_report_titles_references_and_its_own_plot_folder(tmp_path):
    run = tmp_path / "run"
    make_run(run, "ipd-adalign-tiny", ["seed=3", "game.options.reward=4"])
    with mock.patch.object(plots, "draw_references", wraps=plots.draw_references) as drawn:
        text = write_report(run).read_text()
    assert "ipd · adalign s3: reward per round" in alts(text)
    assert "ipd · adalign s3: reward per round against each bot" in alts(text)
    assert "ipd · adalign s3: cooperation rate" in alts(text)
    lines = [dict(c.args[1]) for c in drawn.call_args_list]
    assert lines.count({"mutual cooperation": 4.0, "mutual defection": 1.0}) == 2  # the payoffs
    assert lines.count({}) == 1  # the cooperation rate: no reference lines
    assert sorted(p.name for p in (run / "report-plots").iterdir()) == [
        "coop_rate.png", "eval_reward.png", "reward.png"]  # fmt: skip
    assert not (run / "plots").exists()
    # two reports written into one folder keep their own plots
    other = tmp_path / "other"
    make_run(other, "trust-split-naive-tiny", ["seed=1"], iterations=5)
    shared = tmp_path / "shared"
    write_report(run, shared / "a.html")
    before = (shared / "a-plots" / "reward.png").read_bytes()
    write_report(other, shared / "b.html")
    assert (shared / "a-plots" / "reward.png").read_bytes() == before
    assert (shared / "b-plots" / "reward.png").is_file()
    assert "trust-split · naive s1: reward per round" in alts((shared / "b.html").read_text())


def test_demo_seed_report_and_run_reports_do_not_share_plots(tmp_path):
    from detente.studies.demo import METHODS, write_seed_report

    out = tmp_path / "ipd" / "s0"
    runs = {}
    for method in METHODS:
        runs[method] = out / method
        make_run(runs[method], f"ipd-{method}-tiny", ["seed=0"])
    agents = [make_bot("ipd", b) for b in ("tit-for-tat", "always-defect")]
    result, records = faceoff("ipd", agents, make_protocol("ipd"), 1)
    summary = {m: {"selfplay_coop_rate": 0.5} for m in METHODS}
    page = write_seed_report(out, runs, result, records, summary, {})
    assert page == out / "report.html"
    text = page.read_text()
    check_safe(Page(text))
    assert "ipd · seed 0: reward per round" in alts(text)
    assert "ipd · seed 0: face-off, mean reward per round of the row agent" in alts(text)
    seed_plots = {p.name: p.read_bytes() for p in (out / "report-plots").iterdir()}
    assert {"reward.png", "faceoff.png"} <= set(seed_plots)
    write_report(runs["naive"])  # a run's own report, inside the seed's folder
    assert (runs["naive"] / "report-plots" / "reward.png").is_file()
    assert {p.name: p.read_bytes() for p in (out / "report-plots").iterdir()} == seed_plots


@pytest.mark.parametrize("game", ["ipd", "multi-ipd"])
def test_a_transcript_report_of_one_line_games_writes_no_plot_folder(tmp_path, game):
    record = played(game, ["grim"] * (2 if game == "ipd" else 3))
    out = write_report(tmp_path, tmp_path / "t.html", records=[record], title="t")
    assert one_line_games(Page(out.read_text()))
    assert not (tmp_path / "t-plots").exists()
