"""HTML reports: self-contained, plots written, hostile model text escaped."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser

from detente.evaluate.faceoff import faceoff
from detente.evaluate.report import write_report
from detente.games import make_game
from detente.policies.base import Policy, Reply
from detente.policies.bots import make_bot
from detente.protocol import make_protocol
from detente.rollout.records import write_records
from detente.rollout.runner import InvalidReplyConfig, Match, play

HOSTILE = '<<message_start>> <script>alert("pwned")</script><img src=x onerror=alert(1)> <<message_end>>'


class Hostile(Policy):
    name = "hostile"

    def act(self, requests):
        return [Reply(HOSTILE if r.kind == "message" else "<script>x</script>") for r in requests]


class Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)


def test_report_escapes_model_text(tmp_path):
    game = make_game("trust-split", None, 0)
    records = play([Match(game, (Hostile(), make_bot("trust-split", "honest")), "g")],
                   make_protocol("trust-split"), InvalidReplyConfig(free_retries=0))
    run = tmp_path / "run"
    (run / "transcripts").mkdir(parents=True)
    write_records(run / "transcripts" / "iter-000000.jsonl.gz", records)
    (run / "metrics.jsonl").write_text(
        "".join(json.dumps({"iteration": i, "reward": 0.1 * i, "loss": 1.0 / (i + 1)}) + "\n"
                for i in range(5))
    )
    page = write_report(run).read_text()
    parser = Elements()
    parser.feed(page)
    assert "script" not in parser.tags
    assert not any(name.startswith("on") for name, _ in parser.attrs)
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in page
    assert "[invalid: default move used]" in page
    assert (run / "plots" / "reward.png").stat().st_size > 1000
    assert parser.tags.count("img") == 2  # two curves, embedded


def test_faceoff_outputs_and_human_transcript_report(tmp_path):
    agents = [make_bot("ipd", n) for n in ("tit-for-tat", "always-defect")]
    result, records = faceoff("ipd", agents, make_protocol("ipd"), 3)
    result.write_csv(tmp_path / "f.csv")
    lines = (tmp_path / "f.csv").read_text().splitlines()
    assert lines[0].startswith("row,column,mean_reward,ci95,coop_rate")
    assert len(lines) == 5
    assert result.measures["coop_rate"][0][1] == 0.1  # tit-for-tat cooperates once vs defector
    path = tmp_path / "human.jsonl.gz"
    write_records(path, records[:1])
    proc = subprocess.run([sys.executable, "-m", "detente.cli", "report", str(path)],
                          capture_output=True, text=True, check=True)
    assert "wrote" in proc.stdout
    assert "Round 10" in (tmp_path / "human.html").read_text()
