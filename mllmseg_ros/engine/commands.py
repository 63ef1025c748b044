"""Spoken commands -> what the person means (a target, a stop, or not a command), as speech-to-text delivers them.

``parse_command`` reads intent first, expression second (docs/commands.md has the full account):

- **Length first.** A command longer than ``max_chars`` is a ``ValueError``, decided by ``len()`` before any other
  work, so an over-long message costs nothing in a ROS callback. **Blank text** is a stop (an empty command clears).
- **Speech-to-text as it arrives.** Capitals and punctuation or none; bracketed non-speech ("[BLANK_AUDIO]",
  "(silence)", "*laughs*", "<unk>") removed; merged or split words rewritten ("pickup", "don t"); what engines print
  on silence ("you", "Thank you.", "Thanks for watching!", Amara.org credits, text with no Latin letter) ignored.
- **Sentences are commands in order.** ``.``/``!``/``?`` end a sentence, ``;`` a target. A stop cancels everything
  said before it, and what is named after it is the new target ("Stop. Pick up the green cup." = stop, then the cup).
  A sentence opening with a correction replaces the last target ("The cup. No wait, the bowl.").
- **Intent of a sentence**, from its opening (after "robot", "okay", fillers and politeness):
  - a *stop* phrase stops whatever follows ("stop right there", "emergency stop", "Quit."), unless a new command
    follows it ("stop and pick up the bowl");
  - a *hold* ("wait", "no", "hold on") stops unless an object follows, which then corrects the target ("wait a
    second" stops; "wait, the blue one" is the blue one);
  - a *negation* is never a target: "don't pick up the cup" is not a command (``negated`` names the cup); one that
    names no object stops ("Don't move.", "don't do that"); a negated stop changes nothing ("don't stop");
  - noise, acknowledgements ("okay", "thanks"), questions and statements that name no object through a request
    frame ("what was that?", "can you hear me?", "I think it's raining") are not commands;
  - otherwise its targets: request frames ("can you", "I'm trying to find ...", "do you see ...", "pick ... up",
    tag questions at the end), sequences ("and then", "after that"), self-corrections ("the cup no wait the bowl"),
    "not the cup but the bowl". A target that names no object ("pick it up", "follow that") is rejected.
- **Outcome** (``intent``): ``target`` (``expressions``; ``stop`` when a stop came first), ``stop``, ``ignored`` (not
  a command: ``reason`` says why) or ``rejected`` (a command naming nothing usable: ``problems`` say why). When in
  doubt, no new target. Parts that cannot be used beside usable ones are listed in ``problems``.

The phrases are data (``command_grammar.tsv``); ``prefixes`` and ``stop_phrases`` replace its address/request/verb
and stop/hold lists (the node's ``command_prefixes`` and ``stop_phrases`` parameters).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .command_grammar import Grammar, default_list, grammar_for
from .command_reader import Reading, SentenceReader

DEFAULT_COMMAND_PREFIXES: tuple[str, ...] = default_list("address", "request", "verb")
DEFAULT_STOP_PHRASES: tuple[str, ...] = default_list("stop", "hold")

# Speech-to-text messages are a sentence or two; longer text is not a spoken command.
MAX_COMMAND_CHARS = 1000

TARGET, STOP, IGNORED, REJECTED = "target", "stop", "ignored", "rejected"


@dataclass(frozen=True)
class ParsedCommand:
    text: str  # the command as received
    expressions: tuple[str, ...]  # referring expressions in the order the person wants them (first target first)
    stop: bool  # the current target ends first (a stop phrase, a negation naming nothing, or blank text)
    problems: tuple[str, ...] = ()  # what could not be used and why; empty when every command phrase was used
    intent: str = STOP  # TARGET (expressions), STOP, IGNORED (not a command) or REJECTED (nothing usable)
    reason: str = ""  # why the command stops, is ignored or rejected; what was corrected or left out of a target
    negated: tuple[str, ...] = ()  # objects named in a negation ("don't pick up the cup" -> the cup): never targets
    corrected: bool = False  # a correction replaced a target ("the cup, no, the bowl"; "No, the other one.")

    @property
    def rejected(self) -> bool:
        """A command that names nothing usable (``problems`` say why): the caller keeps its target knowingly."""
        return self.intent == REJECTED

    @property
    def ignored(self) -> bool:
        """Not a command (noise, an acknowledgement, a question, a negation): ``reason`` says which."""
        return self.intent == IGNORED


def _reading_of(text: str, grammar: Grammar) -> Reading:
    reader = SentenceReader(grammar)
    reading = Reading()
    parts = text.split(";")
    for index, part in enumerate(parts):
        sentences = grammar.sentences(part)
        if not any(sentences):
            if not part.strip() or not any(c.isalnum() for c in part):
                if len(parts) > 1:
                    reading.problems.append(_empty_part_problem(part, index, len(parts)))
                else:
                    reading.ignored.append(f"no words in {part.strip()!r}" if part.strip() else "empty")
                continue
        part_reading = Reading()
        readings = [reader.sentence(words) for words in sentences]
        for i, sentence in enumerate(readings):
            following = readings[i + 1] if i + 1 < len(readings) else None
            if sentence.held and following is not None and following.expressions and not following.stop:
                following.correction = True  # "Get the pen. No. The pencil.": the pencil, not a stop
                continue
            part_reading.then(sentence)
        if len(parts) > 1 and not (part_reading.expressions or part_reading.stop or part_reading.problems):
            part_reading.problems.append(f"no object named in {part.strip()!r}")
        if part_reading.problems and len(parts) > 1:
            part_reading.problems = [f"{p} in {part.strip()!r}" if part.strip() not in p else p for p in part_reading.problems]
        reading.then(part_reading)
    return reading


def _empty_part_problem(part: str, index: int, count: int) -> str:
    if part.strip():
        return f"no words in {part.strip()!r}"
    if index == count - 1:
        return "empty target after the last ';'"
    return "empty target before the first ';'" if index == 0 else "empty target between two ';'"


def _configured(values: Sequence[str], default: tuple[str, ...]) -> tuple[str, ...] | None:
    values = tuple(values)
    return None if values == default else values


def parse_command(
    text: str,
    prefixes: Sequence[str] = DEFAULT_COMMAND_PREFIXES,
    stop_phrases: Sequence[str] = DEFAULT_STOP_PHRASES,
    max_chars: int = MAX_COMMAND_CHARS,
) -> ParsedCommand:
    """A spoken command -> its intent, targets and what could not be used (see the module docstring).

    Raises ValueError only for what cannot be a command: not a string, or longer than ``max_chars`` (checked first).
    """
    if not isinstance(text, str):
        raise ValueError(f"command must be a string, got {type(text).__name__}")
    if len(text) > max_chars:
        raise ValueError(f"command is {len(text)} characters long, more than the {max_chars} allowed")
    if not text.strip():
        return ParsedCommand(text, (), True, (), STOP, "an empty command clears the target")
    grammar = grammar_for(_configured(prefixes, DEFAULT_COMMAND_PREFIXES), _configured(stop_phrases, DEFAULT_STOP_PHRASES))
    reading = _reading_of(text, grammar)
    expressions = tuple(dict.fromkeys(reading.expressions))  # a target named twice is one target
    negated = tuple(dict.fromkeys(n for n in reading.negated if n))
    if expressions:
        intent = TARGET
        reason = "; ".join(reading.problems)
    elif reading.stop:
        intent, reason = STOP, "a stop"
    elif reading.problems:
        intent, reason = REJECTED, "; ".join(reading.problems)
    else:
        intent, reason = IGNORED, "; ".join(dict.fromkeys(reading.ignored)) or "not a command"
    return ParsedCommand(text, expressions, reading.stop, tuple(reading.problems), intent, reason, negated,
                         reading.correction and bool(expressions))


def normalize_command(
    command: str,
    prefixes: Sequence[str] = DEFAULT_COMMAND_PREFIXES,
    stop_phrases: Sequence[str] = DEFAULT_STOP_PHRASES,
    max_chars: int = MAX_COMMAND_CHARS,
) -> list[str]:
    """A spoken command -> the referring expressions the model was trained on, all of the command or an error.

    "Grab the BLUE bowl!" -> ["the blue bowl"]; "pick the red cup; the green box" -> ["the red cup", "the green box"].
    Raises ValueError when the command is empty, too long, a stop, not a command, or any part of it cannot be used
    (``parse_command`` keeps the usable parts instead and lists the rest).
    """
    parsed = parse_command(command, prefixes, stop_phrases, max_chars)
    if not command.strip():
        raise ValueError("command is empty")
    if parsed.stop:
        raise ValueError(f"{command.strip()!r} is a stop command: it names no object" if not parsed.expressions
                         else f"{command.strip()!r} starts with a stop")
    if parsed.intent != TARGET:
        raise ValueError(parsed.reason)
    if parsed.problems:
        raise ValueError("; ".join(parsed.problems))
    return list(parsed.expressions)
