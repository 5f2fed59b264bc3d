"""`detente -h` and each command's help (issue 17, point 9)."""

from __future__ import annotations

import argparse

import pytest

from detente.cli import build_parser, main


def commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_option_has_a_help_line_and_shows_its_default():
    for name, command in commands().items():
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"detente {name} {action.dest}: no help"
        text = command.format_help()
        if name == "faceoff":
            assert "(default: 0)" in text  # --seed
            assert "examples:" in text and "ipd: alternator, always-cooperate" in text


def test_version_and_examples(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("detente ")
    with pytest.raises(SystemExit):
        main(["-h"])
    out = capsys.readouterr().out
    assert "examples:" in out and "detente train ipd-adalign-tiny" in out
    assert "trust-split: forgiving, greedy, honest" in out
