"""Spoken commands as speech-to-text delivers them -> targets, stops and problems (engine/commands.py)."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mllmseg_ros.engine import commands
from mllmseg_ros.engine.commands import (
    DEFAULT_STOP_PHRASES,
    IGNORED,
    MAX_COMMAND_CHARS,
    REJECTED,
    STOP,
    TARGET,
    normalize_command,
    parse_command,
)

CORPUS = Path(__file__).parent / "data" / "spoken_commands.tsv"
CATEGORIES = {
    "target", "frame", "correction", "sequence", "stop", "stop_then_target", "negation", "noise", "acknowledgement",
    "question", "no_object", "statement",
}


def read_corpus() -> list[tuple[str, tuple[str, ...], bool, str]]:
    lines = [line for line in CORPUS.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    rows = list(csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [
        (row["utterance"], () if row["targets"] == "-" else tuple(row["targets"].split(" | ")), row["stop"] == "yes",
         row["category"])
        for row in rows
    ]


def test_corpus_covers_speech_to_text_as_it_arrives():
    corpus = read_corpus()
    assert len(corpus) >= 200
    assert len({utterance for utterance, *_ in corpus}) == len(corpus)
    assert {category for *_, category in corpus} == CATEGORIES
    utterances = [utterance for utterance, *_ in corpus]
    # Vosk-style (lower case, no punctuation), Whisper-style (capitals, punctuation, a leading space, non-speech
    # markers), cloud-style digits
    assert sum(u == u.lower() and all(c.isalnum() or c in " '" for c in u) for u in utterances) >= 50
    assert sum(u[:1].isupper() and u.rstrip()[-1:] in ".!?" for u in utterances) >= 100
    assert sum(u.startswith(" ") for u in utterances) >= 5
    assert sum("[" in u or "(" in u or "*" in u or "<" in u for u in utterances) >= 10
    assert sum(any(c.isdigit() for c in u) for u in utterances) >= 5


@pytest.mark.parametrize("utterance, targets, stop, category", read_corpus())
def test_corpus(utterance, targets, stop, category):
    parsed = parse_command(utterance)
    assert (parsed.expressions, parsed.stop) == (targets, stop), (parsed.intent, parsed.reason)
    assert parsed.text == utterance
    # the intent agrees with the outcome, and no new target always says why
    assert parsed.intent == (TARGET if targets else STOP if stop else parsed.intent)
    if not targets and not stop:
        assert parsed.intent in (IGNORED, REJECTED) and parsed.reason
    if category == "negation":
        assert parsed.ignored and (parsed.negated or "negated stop" in parsed.reason)


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
    assert len(parsed.problems) == 1  # the problem itself, or it with the part it is about
    assert parsed.problems[0] == problem or parsed.problems[0].startswith(f"{problem} in '")


@pytest.mark.parametrize("command", [";", " ; ;", "pick up!", "the cup no wait", "follow it", "pick up that", "Pick it up."])
def test_a_command_naming_nothing_is_rejected_with_a_reason(command):
    parsed = parse_command(command)
    assert parsed.rejected and parsed.expressions == () and not parsed.stop
    assert parsed.problems and parsed.reason


@pytest.mark.parametrize("command", ["follow it", "pick up that", "track them", "grab this one", "go there"])
def test_only_stop_objects_is_not_a_stop(command):
    """Issue 34: "it", "that" name no object, so these are rejected (the target stays), not taken as a stop."""
    parsed = parse_command(command)
    assert not parsed.stop and parsed.rejected
    assert "names no object" in parsed.reason


@pytest.mark.parametrize("command", ["?!", "...", "um uh", "[BLANK_AUDIO]", " you", "Thanks for watching!", "Okay."])
def test_noise_and_acknowledgements_are_ignored(command):
    parsed = parse_command(command)
    assert parsed.ignored and not parsed.stop and parsed.expressions == ()
    assert parsed.reason and not parsed.problems


@pytest.mark.parametrize("command", ["", "   ", "\n\t"])
def test_blank_command_clears_like_a_stop(command):
    parsed = parse_command(command)
    assert (parsed.intent, parsed.stop, parsed.expressions, parsed.problems) == (STOP, True, (), ())


def test_a_stop_cancels_what_came_before_it_and_its_problems():
    parsed = parse_command("the cup; stop")
    assert (parsed.intent, parsed.stop, parsed.expressions, parsed.problems) == (STOP, True, (), ())
    assert parse_command("the cup;; never mind").problems == ()
    assert parse_command("stop; the cup").expressions == ("the cup",)


@pytest.mark.parametrize("command, expressions", [
    ("Stop. Pick up the green cup.", ("the green cup",)),
    ("stop pick up the green cup", ("the green cup",)),
    ("Stop and go to the door.", ("the door",)),
    ("Stop right there.", ()),
    ("Stop following the man in the hat.", ()),
    ("Stop tracking the mark on the wall.", ()),  # "mark" is a verb too: a new command needs a boundary
    ("Stop it, grab the cup.", ("the cup",)),
    ("Emergency stop!", ()),
])
def test_a_stop_at_the_start_of_a_sentence_stops_whatever_follows(command, expressions):
    """Only a new command after it (a new sentence, "and", a command phrase) is taken, after the stop."""
    parsed = parse_command(command)
    assert parsed.stop and parsed.expressions == expressions
    assert parsed.intent == (TARGET if expressions else STOP)


@pytest.mark.parametrize("command, stop, expressions", [
    ("wait a second", True, ()),
    ("Hold on a sec.", True, ()),
    ("Nope.", True, ()),
    ("Wait, the blue one.", False, ("the blue one",)),
    ("No, the other one.", False, ("the other one",)),
    ("Get the pen. No. The pencil.", False, ("the pencil",)),
    ("Get the pen. No.", True, ()),
])
def test_a_hold_stops_unless_an_object_follows_which_corrects_the_target(command, stop, expressions):
    parsed = parse_command(command)
    assert (parsed.stop, parsed.expressions) == (stop, expressions)
    assert parsed.corrected == bool(expressions)


@pytest.mark.parametrize("command, negated", [
    ("Don't pick up the red cup.", ("the red cup",)),
    ("never grab the knife", ("the knife",)),
    ("I don't need the blue pen anymore.", ("the blue pen",)),
    ("Not the cup.", ("the cup",)),
])
def test_a_negated_command_is_never_a_target(command, negated):
    parsed = parse_command(command)
    assert parsed.ignored and parsed.expressions == () and not parsed.stop
    assert parsed.negated == negated and "negat" in parsed.reason


@pytest.mark.parametrize("command, intent", [
    ("Don't move.", STOP), ("Do not move!", STOP), ("Don't do that.", STOP), ("Don't!", STOP),
    ("Don't stop.", IGNORED), ("Don't stop following the ball.", IGNORED),
])
def test_a_negation_naming_no_object_stops_and_a_negated_stop_changes_nothing(command, intent):
    assert parse_command(command).intent == intent


def test_what_a_target_sentence_says_besides_its_target_is_not_lost():
    parsed = parse_command("Grab the cup but not the bowl.")
    assert parsed.expressions == ("the cup",) and parsed.negated == ("the bowl",)
    parsed = parse_command("Grab the mug and put it in the sink.")
    assert parsed.expressions == ("the mug",) and parsed.intent == TARGET
    assert parsed.problems and "'it' names no object" in parsed.problems[0]


def test_the_same_target_named_twice_is_one_target():
    assert parse_command("Pick up the red cup. Pick up the red cup!").expressions == ("the red cup",)


@pytest.mark.parametrize("command", ["What was that?", "Can you hear me?", "Can you dance?", "Is the cup on the table?"])
def test_questions_naming_no_object_to_find_are_not_commands(command):
    parsed = parse_command(command)
    assert parsed.ignored and parsed.expressions == ()


@pytest.mark.parametrize("command", ["I think it's going to rain.", "The coffee is ready.", "I'm tired."])
def test_statements_are_not_commands(command):
    parsed = parse_command(command)
    assert parsed.ignored and "statement" in parsed.reason


def test_a_relative_clause_is_not_a_statement():
    assert parse_command("the ball that is under the table").expressions == ("the ball that is under the table",)
    assert parse_command("the cup which is red").expressions == ("the cup which is red",)


@pytest.mark.parametrize("command, expressions", [
    ("Pick up the red cup [Music]", ("the red cup",)),
    ("[BLANK_AUDIO] Grab the stapler.", ("the stapler",)),
    ("(door closes) get the mail *coughs*", ("the mail",)),
    ("pickup the ball", ("the ball",)),
    ("dont grab the scissors", ()),
    ("Pick up the... the white box.", ("the white box",)),
    ("Find Mr. Smith's hat.", ("mr smith's hat",)),
    ("Subtitles by the Amara.org community", ()),
    ("시청해주셔서 감사합니다", ()),
])
def test_speech_to_text_artefacts(command, expressions):
    assert parse_command(command).expressions == expressions


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
    # a configured phrase known as a hold keeps that role: it stops, unless an object follows
    assert parse_command("wait a second", stop_phrases=["wait"]).stop
    assert parse_command("wait, the bowl", stop_phrases=["wait"]).expressions == ("the bowl",)
    assert not parse_command("wait a second", stop_phrases=["stop"]).stop


def test_and_splits_only_before_a_configured_command_phrase():
    assert parse_command("the cup and yeet the ball", prefixes=["yeet"]).expressions == ("the cup", "the ball")
    assert parse_command("grab the cup and pick up the bowl", prefixes=[]).expressions == (
        "grab the cup and pick up the bowl",
    )
    # with the built-in list, a word it does not know right before "the" opens a command
    assert parse_command("Press the red button.").expressions == ("the red button",)


def test_over_long_command_is_refused_by_length_before_any_parsing(monkeypatch):
    def no_tokenising(*args, **kwargs):
        raise AssertionError("the command was tokenised")

    monkeypatch.setattr(commands, "grammar_for", no_tokenising)
    monkeypatch.setattr(commands, "_reading_of", no_tokenising)
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
    with pytest.raises(ValueError, match="^command is empty$"):
        normalize_command("  ")


@pytest.mark.parametrize("command, message", [
    ("never mind", "'never mind' is a stop command: it names no object"),
    ("stop and pick up the cup", "'stop and pick up the cup' starts with a stop"),
    ("follow it", "'it' names no object after 'follow': say what it is"),
    ("the cup;; the bowl;", "empty target between two ';'; empty target after the last ';'"),
])
def test_normalize_command_says_why_in_full(command, message):
    with pytest.raises(ValueError) as raised:
        normalize_command(command)
    assert str(raised.value) == message


def test_normalize_command_keeps_the_length_limit_given():
    assert normalize_command("the red cup", max_chars=11) == ["the red cup"]
    with pytest.raises(ValueError, match="more than the 10 allowed"):
        normalize_command("the red cup", max_chars=10)


@pytest.mark.parametrize("text, reason", [
    ("...", "no words in '...'"),
    ("[BLANK_AUDIO]", "no speech (non-speech markers or no English words)"),
    ("(silence)", "no speech (non-speech markers or no English words)"),
])
def test_what_is_not_speech_is_ignored_with_its_reason(text, reason):
    parsed = parse_command(text)
    assert parsed.ignored and parsed.reason == reason


def test_segmenter_parses_commands_with_its_options(golden_checkpoint):
    from mllmseg_ros.engine import Segmenter, SegmenterOptions

    options = SegmenterOptions(stop_phrases=("freeze",), max_command_chars=40)
    segmenter = Segmenter.from_pretrained(golden_checkpoint, options=options)
    assert segmenter.parse_command("um freeze").stop
    assert segmenter.parse_command("stop").expressions == ("stop",)
    assert segmenter.expressions_from_command("grab the cup and then the plate") == ["the cup", "the plate"]
    with pytest.raises(ValueError, match="more than the 40 allowed"):
        segmenter.parse_command("pick up the red cup and then the blue plate")


def test_every_synthetic_scene_command_reads_as_its_expression():
    """The demo's and the training data's spoken commands ("please pick up the cup left of the bowl")."""
    from mllmseg_ros.data.scenes import make_scene

    commands = [(e.command, e.text) for seed in range(40) for e in make_scene(seed).expressions]
    assert len(commands) > 200
    wrong = [(command, parse_command(command).expressions) for command, text in commands
             if parse_command(command).expressions != (text,)]
    assert wrong == []


@pytest.mark.parametrize("text, intent, reason", [
    ("", STOP, "an empty command clears the target"),
    ("  ", STOP, "an empty command clears the target"),
    ("stop", STOP, "a stop"),
    ("the cup;; the bowl;", TARGET, "empty target between two ';'; empty target after the last ';'"),
    ("the cup; please", TARGET, "no object named in 'please'"),
    ("the bowl; the cup no wait", TARGET, "nothing named after the correction 'no wait' in 'the cup no wait'"),
    ("follow it; pick up that", REJECTED, "'it' names no object after 'follow': say what it is in 'follow it'; "
                                          "'that' names no object after 'pick up': say what it is in 'pick up that'"),
    ("Okay. What was that?", IGNORED, "'okay' acknowledges; it is not a command; "
                                      "'what was that' is a question, not a request naming an object"),
])
def test_the_reason_a_voice_front_end_gets_is_whole(text, intent, reason):
    """~/command_status carries ``reason`` as is: each part's problem named with its part (where the problem does not
    quote it already), several joined with '; '."""
    parsed = parse_command(text)
    assert (parsed.text, parsed.intent, parsed.reason) == (text, intent, reason)


def test_a_non_string_is_named_by_its_type():
    with pytest.raises(ValueError) as raised:
        parse_command(3)
    assert str(raised.value) == "command must be a string, got int"


def test_unknown_verbs_are_guessed_with_the_built_in_list_only():
    assert parse_command("zorp the blue bowl").expressions == ("the blue bowl",)
    assert parse_command("zorp the blue bowl", prefixes=["pick up"]).expressions == ("zorp the blue bowl",)


def test_a_correction_is_marked_only_when_it_corrects():
    assert parse_command("The fork. I mean the spoon.").corrected
    assert not parse_command("the cup").corrected


# The sentence reader's rarer paths (engine/command_reader.py), each met by no corpus line: a negation inside a
# command, "not X but Y", a correction word opening a sentence that names nothing.
@pytest.mark.parametrize("text, negated", [("pick up not the cup", "the cup"), ("pick up, not the red cup", "the red cup")])
def test_a_command_of_a_negation_alone_takes_nothing_and_names_what_it_negates(text, negated):
    parsed = parse_command(text)
    assert parsed.intent == IGNORED and parsed.expressions == () and not parsed.stop
    assert parsed.reason == "a negation names no object to take" and parsed.negated == (negated,)


@pytest.mark.parametrize("text, target", [
    ("pick up not the cup but the bowl", "the bowl"),
    ("grab not the red cup but the blue bowl please", "the blue bowl"),
    ("take not the cup but the bowl to the left", "the bowl"),
])
def test_not_this_but_that_takes_what_follows_the_but(text, target):
    parsed = parse_command(text)
    assert parsed.intent == TARGET and parsed.expressions == (target,) and not parsed.stop


@pytest.mark.parametrize("text", ["no, that one", "nope, that one", "wait, that one", "not that one"])
def test_a_correction_word_before_a_pointer_to_nothing_stops(text):
    """"No, that one." says the robot has the wrong object; it names no new one: a stop, not a rejected command."""
    parsed = parse_command(text)
    assert parsed.intent == STOP and parsed.stop and parsed.expressions == ()


@pytest.mark.parametrize("text", ["no. the blue bowl", "nope. the blue bowl", "wait. the blue bowl"])
def test_a_bare_correction_word_then_a_target_is_that_target_without_a_stop(text):
    parsed = parse_command(text)
    assert parsed.intent == TARGET and parsed.expressions == ("the blue bowl",) and not parsed.stop


@pytest.mark.parametrize("text, intent, reason", [
    ("um uh", IGNORED, "only hesitations"),
    ("okay thanks", IGNORED, "nothing asked"),
    ("i mean", IGNORED, "'i mean' names nothing"),
    ("thanks a lot", IGNORED, "'thanks a lot' acknowledges; it is not a command"),
    ("do not stop moving", IGNORED, "a negated stop (do not stop moving) changes nothing"),
    ("sorry that one", REJECTED, "'that one' names no object: say what it is"),
    ("pick up", REJECTED, "no object named after 'pick up': say what it is"),
    ("pick up the", REJECTED, "'the' names no object after 'pick up': say what it is"),
    ("robot got it", IGNORED, "'got it' acknowledges; it is not a command"),
    ("can you hear me", IGNORED, "no action I can take after 'can you': 'hear me'"),
    ("would you mind", IGNORED, "nothing asked after 'would you mind'"),
    ("pick them all up", REJECTED, "'them all' names no object after 'pick ... up': say what it is"),
    ("pick up the cup no that one", REJECTED, "'that one' names no object after 'pick up': say what it is"),
])
def test_what_names_nothing_says_why_in_words_a_user_can_act_on(text, intent, reason):
    """The reason goes out on the command status topic: each wording checked whole."""
    parsed = parse_command(text)
    assert parsed.intent == intent and parsed.reason == reason and parsed.expressions == ()


def test_a_correction_opened_by_no_that_names_nothing_new_stops_and_a_bare_one_defers_to_the_next_sentence():
    """"No sorry, that one." names no new object: a stop. "No sorry. The blue bowl.": the bowl, without a stop."""
    parsed = parse_command("no sorry that one")
    assert parsed.intent == STOP and parsed.stop and parsed.expressions == ()
    parsed = parse_command("no sorry. the blue bowl")
    assert parsed.intent == TARGET and parsed.expressions == ("the blue bowl",) and not parsed.stop


@pytest.mark.parametrize("text", ["Can you stop?", "Could you please stop", "Can you hold on", "Grab the cup and then wait."])
def test_a_stop_or_hold_after_a_request_or_a_sequence_stops(text):
    parsed = parse_command(text)
    assert parsed.intent == STOP and parsed.stop and parsed.expressions == ()


def test_what_a_negation_names_is_kept_through_a_later_sentence_and_after_a_hold():
    """The caller must never take a negated object, so "negated" survives what comes after it."""
    parsed = parse_command("Don't take the cup. Pick up the bowl.")
    assert parsed.intent == TARGET and parsed.expressions == ("the bowl",) and parsed.negated == ("the cup",)
    parsed = parse_command("Wait, don't take the cup.")
    assert parsed.intent == STOP and parsed.negated == ("the cup",)


@pytest.mark.parametrize("text, negated", [("Take it instead of the cup.", "the cup"),
                                           ("Take them both instead of the cup.", "the cup")])
def test_a_pronoun_target_is_rejected_and_still_names_what_it_negates(text, negated):
    parsed = parse_command(text)
    assert parsed.intent == REJECTED and parsed.expressions == () and parsed.negated == (negated,)


def test_not_one_object_but_another_takes_all_words_after_the_but():
    parsed = parse_command("Not the cup but the bowl on the left table.")
    assert parsed.intent == TARGET and parsed.expressions == ("the bowl on the left table",)


@pytest.mark.parametrize("text, negated", [("Not scissors.", "scissors"), ("Never 3d printer.", "3d printer")])
def test_a_negation_before_a_bare_object_negates_it_rather_than_stopping(text, negated):
    """"not" before any word, and any negation before a word starting with a digit, names an object, not a verb."""
    parsed = parse_command(text)
    assert parsed.intent == IGNORED and not parsed.stop and parsed.negated == (negated,)


def test_a_sequence_word_after_what_is_stopped_starts_the_new_target():
    parsed = parse_command("Stop following the cup, then the bowl.")
    assert parsed.intent == TARGET and parsed.stop and parsed.expressions == ("the bowl",)


def test_an_empty_step_between_two_sequence_words_is_no_problem():
    parsed = parse_command("First the cup, and then, after that, the bowl.")
    assert parsed.intent == TARGET and parsed.expressions == ("the cup", "the bowl") and parsed.problems == ()


@pytest.mark.parametrize("text", ["Bring me what is on the table.", "Find the cup, I mean, what is on the table."])
def test_an_object_after_a_command_verb_is_a_target_even_when_it_reads_like_a_question(text):
    parsed = parse_command(text)
    assert parsed.intent == TARGET and parsed.expressions == ("what is on the table",)


@pytest.mark.parametrize("text", ["Wait.", "Wait no."])
def test_wait_stops_when_the_configured_stop_phrases_leave_it_only_a_correction(text):
    """With stop_phrases that omit "wait", it is read as a correction; naming nothing new it still stops."""
    parsed = parse_command(text, stop_phrases=("stop", "halt"))
    assert parsed.intent == STOP and parsed.stop and parsed.expressions == ()
