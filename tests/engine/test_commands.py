"""Spoken commands as speech-to-text delivers them -> targets, stops and problems (engine/commands.py)."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mllmseg_ros.engine import commands
from mllmseg_ros.engine.commands import (
    DEFAULT_STOP_PHRASES,
    MAX_COMMAND_CHARS,
    ParsedCommand,
    normalize_command,
    parse_command,
)

CORPUS = Path(__file__).parent / "data" / "spoken_commands.tsv"


def read_corpus() -> list[tuple[str, tuple[str, ...], bool]]:
    lines = [line for line in CORPUS.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    rows = list(csv.DictReader(lines, delimiter="\t"))
    return [
        (row["utterance"], () if row["targets"] == "-" else tuple(row["targets"].split(" | ")), row["stop"] == "yes")
        for row in rows
    ]


def test_corpus_is_speech_to_text_style():
    corpus = read_corpus()
    assert len(corpus) >= 60
    assert len({utterance for utterance, _, _ in corpus}) == len(corpus)
    for utterance, _, _ in corpus:  # lower case, no punctuation, as speech-to-text gives it
        assert utterance == utterance.lower() and all(c.isalnum() or c in " '" for c in utterance), utterance


@pytest.mark.parametrize("utterance, targets, stop", read_corpus())
def test_corpus(utterance, targets, stop):
    parsed = parse_command(utterance)
    assert (parsed.expressions, parsed.stop) == (targets, stop)
    assert parsed.text == utterance
    # Nothing usable and no stop must say why; a stop or a clean command has nothing to report.
    assert bool(parsed.problems) == parsed.rejected


@pytest.mark.parametrize(
    "command, expressions, problem",
    [
        ("the red ball;", ("the red ball",), "empty target after the last ';'"),
        ("; the cup", ("the cup",), "empty target before the first ';'"),
        ("the cup;; the bowl", ("the cup", "the bowl"), "empty target between two ';'"),
        ("the cup; ...; the bowl", ("the cup", "the bowl"), "no words in '...'"),
        ("the cup; please", ("the cup",), "no object named in 'please'"),
        ("the cup and then", ("the cup",), "nothing named after 'and then'"),
        ("the bowl; the cup no wait", ("the bowl",), "nothing named after the correction 'no wait'"),
    ],
)
def test_valid_parts_are_kept_and_the_rest_reported(command, expressions, problem):
    parsed = parse_command(command)
    assert parsed.expressions == expressions and not parsed.stop
    assert len(parsed.problems) == 1 and problem in parsed.problems[0]


@pytest.mark.parametrize("command", ["?!", ";", " ; ;", "...", "um uh", "pick up!", "the cup no wait"])
def test_nothing_usable_is_rejected_with_a_reason(command):
    parsed = parse_command(command)
    assert parsed.rejected and parsed.expressions == () and not parsed.stop
    assert parsed.problems


@pytest.mark.parametrize("command", ["", "   ", "\n\t"])
def test_blank_command_clears_like_a_stop(command):
    assert parse_command(command) == ParsedCommand(command, (), True, ())


def test_a_stop_cancels_what_came_before_it_and_its_problems():
    assert parse_command("the cup; stop") == ParsedCommand("the cup; stop", (), True, ())
    assert parse_command("the cup;; never mind").problems == ()
    assert parse_command("stop; the cup").expressions == ("the cup",)


def test_punctuation_and_case_from_typed_commands():
    assert parse_command("The cup. No wait, the BOWL!").expressions == ("the bowl",)
    assert parse_command("Pick up the mug. And then go to the door.").expressions == ("the mug", "the door")
    assert parse_command("the man\u2019s hat").expressions == ("the man's hat",)
    assert parse_command("the bottle of 1.5 litres").expressions == ("the bottle of 1.5 litres",)
    assert parse_command("Stop!").stop


def test_stop_phrases_are_configurable():
    assert not parse_command("halt", stop_phrases=["stop"]).stop
    assert parse_command("halt", stop_phrases=["stop"]).expressions == ("halt",)
    assert parse_command("freeze robot", stop_phrases=["freeze"]).stop
    assert "stop" in DEFAULT_STOP_PHRASES and "never mind" in DEFAULT_STOP_PHRASES


def test_and_splits_only_before_a_configured_command_phrase():
    assert parse_command("the cup and yeet the ball", prefixes=["yeet"]).expressions == ("the cup", "the ball")
    assert parse_command("grab the cup and pick up the bowl", prefixes=[]).expressions == (
        "grab the cup and pick up the bowl",
    )


def test_over_long_command_is_refused_by_length_before_any_parsing(monkeypatch):
    def no_tokenising(*args, **kwargs):
        raise AssertionError("the command was tokenised")

    monkeypatch.setattr(commands, "_words", no_tokenising)
    monkeypatch.setattr(commands, "_rules", no_tokenising)
    megabyte = "pick up the red cup and " * (1_000_000 // 24)
    with pytest.raises(ValueError, match=f"more than the {MAX_COMMAND_CHARS} allowed"):
        parse_command(megabyte)
    with pytest.raises(ValueError, match="more than the 10 allowed"):
        parse_command("the red cup", max_chars=10)
    with pytest.raises(ValueError, match="more than"):
        normalize_command(megabyte)


def test_command_of_exactly_max_chars_is_parsed():
    command = "the cup".ljust(MAX_COMMAND_CHARS)
    assert parse_command(command).expressions == ("the cup",)


@pytest.mark.parametrize("command", [None, 3, b"the cup", ["the cup"]])
def test_non_string_is_refused(command):
    with pytest.raises(ValueError, match="must be a string"):
        parse_command(command)
    with pytest.raises(ValueError, match="must be a string"):
        normalize_command(command)


def test_normalize_command_needs_all_of_the_command():
    assert normalize_command("um pick up the cup and then the bowl") == ["the cup", "the bowl"]
    with pytest.raises(ValueError, match="empty target after the last ';'"):
        normalize_command("the red ball;")
    with pytest.raises(ValueError, match="stop command"):
        normalize_command("never mind")
    with pytest.raises(ValueError, match="command is empty"):
        normalize_command("  ")


def test_segmenter_parses_commands_with_its_options(golden_checkpoint):
    from mllmseg_ros.engine import Segmenter, SegmenterOptions

    options = SegmenterOptions(stop_phrases=("freeze",), max_command_chars=40)
    segmenter = Segmenter.from_pretrained(golden_checkpoint, options=options)
    assert segmenter.parse_command("um freeze").stop
    assert segmenter.parse_command("stop").expressions == ("stop",)
    assert segmenter.expressions_from_command("grab the cup and then the plate") == ["the cup", "the plate"]
    with pytest.raises(ValueError, match="more than the 40 allowed"):
        segmenter.parse_command("pick up the red cup and then the blue plate")
