"""Spoken commands -> referring expressions, as a speech-to-text node delivers them.

``parse_command`` reads one command (lower case or not, with or without punctuation) the way a person means it:

- **Length first.** A command longer than ``max_chars`` (``MAX_COMMAND_CHARS`` by default) is a ``ValueError``,
  decided by ``len()`` before any other work, so an over-long message costs nothing in a ROS callback.
- **Blank text** clears the current target: ``stop=True``, no expressions (as an empty command always has).
- **Targets.** ``;`` separates targets. Within a target, sequencing words split it into targets in the order the
  person wants them: "and then", "then", "after that", "afterwards", "followed by", "and also", "and finally", and a
  plain "and" only when a new command phrase follows it ("grab the cup and pick up the bowl"). Any other "and" is part
  of the expression ("the ball between the red cup and the blue box", "the black and white cat"; "the cup and the
  bowl" stays one expression, one mask over both: say "and then" or repeat the verb to name them in turn).
- **Noise.** Hesitations ("um", "uh", "er", "hmm" ...) and politeness ("please", "thanks", "thank you", "for me",
  "if you can" ...) are dropped anywhere; words or word groups that speech-to-text repeats ("the the red cup", "pick
  up pick up") are said once. "like" and "you know" are kept: they can be part of an expression ("the toy that looks
  like a duck"); only a leading "like" is dropped, as a leading phrase.
- **Leading phrases** from ``prefixes`` (``DEFAULT_COMMAND_PREFIXES``: requests, addresses and verbs such as "can you",
  "robot", "pick up", "go to") are removed repeatedly; "first" is too when a determiner or a command phrase follows.
  Trailing "now", "actually", "instead", "sorry", "i mean", "okay" are dropped.
- **Self-corrections** keep what follows the last correction of each target: "no wait", "wait", "sorry", "i mean",
  "actually", "or rather", "scratch that", "make that", "not that one", and "no" when an object or command follows
  ("the cup no the bowl"; "the box with no lid" keeps its "no"). "not the cup but the bowl" means the bowl; "the
  red cup not the blue one" means the red cup. A correction followed by nothing retracts the target (a ``problems``
  entry says so).
- **Stop phrases** (``stop_phrases``, ``DEFAULT_STOP_PHRASES``): a target made only of stop phrases, with fillers,
  leading phrases and objects such as "that", "it", "everything" around them ("um stop", "stop stop", "no stop",
  "cancel that", "never mind", "okay robot halt"), ends the current target. A stop cancels everything said before
  it; targets named after it stay ("stop and then find the bowl" -> the bowl). A stop phrase inside an expression
  is part of it ("the stop sign").
  "stop following the man" (a stop verb, then a verb in -ing) is a stop too.
- **Numbers as words** ("the second cup", "two cups") are kept verbatim.
- **Problems.** What cannot be used (an empty target after ``;``, a part of only punctuation or only fillers, a
  retracted target) is listed in ``problems`` and the valid targets are kept. No expressions, no stop and a reason in
  ``problems`` means the command is rejected: the caller keeps or clears its target knowingly (``rejected``).

The word lists other than ``prefixes`` and ``stop_phrases`` are fixed here: they describe English speech, not a robot.
Phrase matching is hand-written over word lists (no NLP library): the rules are a few dozen fixed phrases, and a
parser or tagger would be a large dependency that still would not know these robot-specific rules.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

from .prompt import clean_expression

# Leading phrases a robot operator says before naming the object ("pick up the red cup"). Longest match first.
DEFAULT_COMMAND_PREFIXES: tuple[str, ...] = (
    "please", "can you", "could you", "would you", "will you", "robot", "hey robot", "hey", "okay", "ok", "alright",
    "all right", "so", "well", "yeah", "just", "like", "now", "then", "and", "also", "finally", "first of all",
    "i want you to", "i need you to", "i'd like you to", "i want", "i need", "i'd like", "let's", "try to",
    "how about", "what about", "go and", "go",
    "pick up", "pick out", "pick", "grab me", "grab", "grasp", "take", "get me", "get", "fetch me", "fetch",
    "bring me", "bring", "hand me", "give me", "pass me", "hold", "reach for", "touch",
    "go to", "go towards", "go toward", "head to", "move to", "move towards", "navigate to", "drive to", "walk to",
    "approach", "find me", "find", "look at", "look for", "point at", "point to", "show me", "locate", "segment",
    "track", "follow", "where is", "where's", "where are", "select", "choose", "put down", "push", "open", "close",
)

# Commands that end the current target when they are all a target says (with fillers and STOP_OBJECTS around them).
DEFAULT_STOP_PHRASES: tuple[str, ...] = (
    "stop", "halt", "cancel", "abort", "freeze", "wait", "hold on", "no", "never mind", "nevermind", "nothing", "none",
    "forget it", "forget that", "forget about it", "enough", "that's enough", "that's all", "that is all",
)

# Speech-to-text messages are a sentence or two; longer text is not a spoken command.
MAX_COMMAND_CHARS = 1000

FILLERS = ("um", "umm", "uh", "uhh", "uhm", "er", "erm", "ah", "ahh", "hmm", "hm", "mm", "mmm", "eh")
POLITENESS = (
    "please", "thanks", "thank you", "thank you very much", "thanks a lot", "for me", "kindly", "if you can",
    "if you could", "if you don't mind", "if possible",
)
TRAILING = ("now", "right now", "actually", "instead", "sorry", "i mean", "okay", "ok")
CORRECTIONS = (
    "no wait", "wait no", "no sorry", "no no", "sorry", "wait", "i mean", "i meant", "actually", "or rather",
    "scratch that", "make that", "not that one", "not that", "correction", "oops",
)
SEQUENCE_MARKERS = (
    "and then", "then", "and after that", "after that", "afterwards", "followed by", "and also", "and finally",
    "and lastly",
)
STOP_OBJECTS = (
    "that", "it", "this", "everything", "all", "all that", "now", "the command", "the target", "tracking",
    "following", "moving", "robot",
)
STOP_VERBS = ("stop", "cancel", "halt", "abort", "quit")
DETERMINERS = ("the", "a", "an", "this", "that", "these", "those", "my", "your", "its", "our", "their")
# Words after which "not" negates a property ("the cup that is not red") rather than a second object.
COPULAS = ("is", "are", "was", "were", "be", "it's", "that's", "which", "who", "does", "do")
PREPOSITIONS = ("to", "from", "by", "of", "with", "on", "in", "at", "up")

_PUNCTUATION = re.compile(r"(?!(?<=\d)\.(?=\d))[^\w\s'-]")  # a dot between digits ("1.5") is kept


@dataclass(frozen=True)
class ParsedCommand:
    text: str  # the command as received
    expressions: tuple[str, ...]  # referring expressions in the order the person wants them (first target first)
    stop: bool  # the command ends the current target (a stop phrase, or blank text)
    problems: tuple[str, ...]  # what was dropped and why; empty when all of the command was used

    @property
    def rejected(self) -> bool:
        """Nothing usable: no target and no stop (``problems`` says why)."""
        return not self.stop and not self.expressions


PhraseIndex = dict[str, list[tuple[str, ...]]]  # first word -> the phrases starting with it, longest first


def _phrases(*lists: Iterable[str]) -> PhraseIndex:
    """Phrases as word tuples indexed by their first word (a lookup per word instead of a scan of every phrase)."""
    index: PhraseIndex = {}
    for phrase in sorted({tuple(p.lower().split()) for ps in lists for p in ps if p.strip()}, key=len, reverse=True):
        index.setdefault(phrase[0], []).append(phrase)
    return index


_FILLERS, _POLITENESS, _TRAILING = _phrases(FILLERS), _phrases(POLITENESS), _phrases(TRAILING)
_CORRECTIONS, _SEQUENCE_MARKERS = _phrases(CORRECTIONS), _phrases(SEQUENCE_MARKERS)


def _match(words: Sequence[str], i: int, phrases: PhraseIndex) -> int:
    """Length of the longest phrase that starts at ``words[i]``, 0 if none."""
    if i < len(words):
        for phrase in phrases.get(words[i], ()):
            if tuple(words[i:i + len(phrase)]) == phrase:
                return len(phrase)
    return 0


def _words(text: str) -> list[str]:
    text = _PUNCTUATION.sub(" ", text.lower().replace("\u2019", "'"))
    return [w for w in (w.strip("'-") for w in text.split()) if w]


def _drop(words: list[str], phrases: PhraseIndex) -> list[str]:
    kept, i = [], 0
    while i < len(words):
        n = _match(words, i, phrases)
        if n:
            i += n
        else:
            kept.append(words[i])
            i += 1
    return kept


def _collapse_repeats(words: list[str], longest: int = 4) -> list[str]:
    """Say once what speech-to-text repeated: "the the cup", "the red the red cup". Linear in the words."""
    kept: list[str] = []
    for word in words:
        kept.append(word)
        for n in range(1, longest + 1):
            if len(kept) >= 2 * n and kept[-2 * n:-n] == kept[-n:]:
                del kept[-n:]
                break
    return kept


def _drop_trailing(words: list[str]) -> list[str]:
    changed = True
    while changed and words:
        changed = False
        for phrase in (phrase for phrases in _TRAILING.values() for phrase in phrases):
            if len(words) >= len(phrase) and tuple(words[-len(phrase):]) == phrase:
                words, changed = words[:-len(phrase)], True
                break
    return words


class _Rules:
    """The configurable word lists of one ``parse_command`` call, as word tuples."""

    def __init__(self, prefixes: tuple[str, ...], stop_phrases: tuple[str, ...]) -> None:
        self.prefixes = _phrases(prefixes)
        self.verbs = _phrases(p for p in prefixes if p.strip().lower() != "and")
        self.stops = _phrases(stop_phrases)
        self.stop_set = {phrase for phrases in self.stops.values() for phrase in phrases}
        self.stop_words = _phrases(stop_phrases, STOP_OBJECTS)

    def is_stop(self, words: Sequence[str]) -> bool:
        """Only stop phrases and stop objects, at least one stop phrase; or a stop verb and a verb in -ing."""
        if len(words) > 1 and words[0] in STOP_VERBS and words[1].endswith("ing"):
            return True  # "stop following the man": the object is what to stop doing, not a new target
        i, saw_stop = 0, False
        while i < len(words):
            n = _match(words, i, self.stop_words)
            if not n:
                return False
            saw_stop = saw_stop or tuple(words[i:i + n]) in self.stop_set
            i += n
        return saw_stop

    def strip_leading(self, words: list[str]) -> tuple[list[str], bool]:
        """Leading phrases removed; True when what is left (at any step) is a stop ("okay robot stop")."""
        while words:
            if self.is_stop(words):
                return [], True
            n = _match(words, 0, self.prefixes)
            if not n and words[0] in ("first", "firstly") and len(words) > 1:
                n = 1 if words[1] in DETERMINERS or _match(words, 1, self.prefixes) else 0
            if not n:
                break
            words = words[n:]
        return words, False

    def starts_command(self, words: Sequence[str], i: int) -> bool:
        """A command phrase starts at ``words[i]`` ("and pick up the bowl"), not a relation ("and close to it")."""
        n = _match(words, i, self.verbs)
        return bool(n) and (i + n >= len(words) or words[i + n] not in PREPOSITIONS)

    def split_sequence(self, words: list[str]) -> list[tuple[str | None, list[str]]]:
        """(marker before it, words) per target in order; the first marker is None."""
        segments: list[tuple[str | None, list[str]]] = [(None, [])]
        i = 0
        while i < len(words):
            n = _match(words, i, _SEQUENCE_MARKERS)
            if not n and words[i] == "and" and (i + 1 == len(words) or self.starts_command(words, i + 1)):
                n = 1
            if n:
                segments.append((" ".join(words[i:i + n]), []))
                i += n
            else:
                segments[-1][1].append(words[i])
                i += 1
        return segments

    def last_correction(self, words: list[str]) -> tuple[str | None, list[str]]:
        """(the last correction's words, what follows it); (None, words) without a correction."""
        marker, rest, i = None, words, 0
        while i < len(words):
            n = _match(words, i, _CORRECTIONS)
            if not n and words[i] == "no" and (
                i + 1 == len(words) or words[i + 1] in DETERMINERS or _match(words, i + 1, self.prefixes)
                or _match(words, i + 1, self.stops)
            ):
                n = 1
            if n:
                marker, rest = " ".join(words[i:i + n]), words[i + n:]
                i += n
            else:
                i += 1
        return marker, rest

    def target(self, words: list[str]) -> tuple[str | None, bool, str | None]:
        """One target's words -> (expression or None, stop, problem or None)."""
        words, stop = self.strip_leading(_drop_trailing(words))
        if stop:
            return None, True, None
        marker, words = self.last_correction(words)
        if marker is not None:
            words, stop = self.strip_leading(_drop_trailing(words))
            if stop:
                return None, True, None
            if not words:
                return None, False, f"nothing named after the correction {marker!r}"
        if words and words[0] == "not":
            if "but" not in words:
                return None, False, "a negation names no object"
            words, _ = self.strip_leading(words[len(words) - words[::-1].index("but"):])
        for i in range(1, len(words) - 1):  # "the red cup not the blue one" -> the red cup
            if words[i] == "not" and words[i + 1] in DETERMINERS and words[i - 1] not in COPULAS:
                words = words[:i]
                break
        expression = clean_expression(" ".join(words))
        return (expression, False, None) if expression else (None, False, "no object named")


@lru_cache(maxsize=8)  # the node parses every command with the same lists
def _rules(prefixes: tuple[str, ...], stop_phrases: tuple[str, ...]) -> _Rules:
    return _Rules(prefixes, stop_phrases)


def _empty_part_problem(part: str, index: int, count: int) -> str:
    if part.strip():
        return f"no words in {part.strip()!r}"
    if index == count - 1:
        return "empty target after the last ';'"
    return "empty target before the first ';'" if index == 0 else "empty target between two ';'"


def parse_command(
    text: str,
    prefixes: Sequence[str] = DEFAULT_COMMAND_PREFIXES,
    stop_phrases: Sequence[str] = DEFAULT_STOP_PHRASES,
    max_chars: int = MAX_COMMAND_CHARS,
) -> ParsedCommand:
    """A spoken command -> its targets, whether it is a stop, and what could not be used (see the module docstring).

    Raises ValueError only for what cannot be a command: not a string, or longer than ``max_chars`` (checked first).
    """
    if not isinstance(text, str):
        raise ValueError(f"command must be a string, got {type(text).__name__}")
    if len(text) > max_chars:
        raise ValueError(f"command is {len(text)} characters long, more than the {max_chars} allowed")
    if not text.strip():
        return ParsedCommand(text, (), True, ())
    rules = _rules(tuple(prefixes), tuple(stop_phrases))
    expressions: list[str] = []
    problems: list[str] = []
    stop = False
    parts = text.split(";")
    if not any(_words(part) for part in parts):  # only separators and punctuation: one reason, not one per part
        return ParsedCommand(text, (), False, (f"no words in {text.strip()!r}",))
    for index, part in enumerate(parts):
        words = _words(part)
        if not words:
            problems.append(_empty_part_problem(part, index, len(parts)))
            continue
        words = _collapse_repeats(_drop(_drop(words, _FILLERS), _POLITENESS))
        named, problems_before = False, len(problems)
        segments = rules.split_sequence(words)
        for position, (marker, segment) in enumerate(segments):
            expression, segment_stop, problem = rules.target(segment) if segment else (None, False, None)
            if segment_stop:  # a stop cancels everything said before it
                expressions, problems, stop, named = [], [], True, True
            elif expression is not None:
                expressions.append(expression)
                stop, named = False, True
            elif problem is not None:
                problems.append(f"{problem} in {part.strip()!r}")
            elif marker is not None and position == len(segments) - 1:
                problems.append(f"nothing named after {marker!r} in {part.strip()!r}")
        if not named and len(problems) == problems_before:
            problems.append(f"no object named in {part.strip()!r}")
    return ParsedCommand(text, tuple(expressions), stop, tuple(problems))


def normalize_command(
    command: str,
    prefixes: Sequence[str] = DEFAULT_COMMAND_PREFIXES,
    stop_phrases: Sequence[str] = DEFAULT_STOP_PHRASES,
    max_chars: int = MAX_COMMAND_CHARS,
) -> list[str]:
    """A spoken command -> the referring expressions the model was trained on, all of the command or an error.

    "Grab the BLUE bowl!" -> ["the blue bowl"]; "pick the red cup; the green box" -> ["the red cup", "the green box"].
    Raises ValueError when the command is empty, too long, a stop command, or any part of it cannot be used
    (``parse_command`` keeps the usable parts instead and lists the rest).
    """
    parsed = parse_command(command, prefixes, stop_phrases, max_chars)
    if not command.strip():
        raise ValueError("command is empty")
    if parsed.stop:
        raise ValueError(f"{command.strip()!r} is a stop command: it names no object")
    if parsed.problems:
        raise ValueError("; ".join(parsed.problems))
    return list(parsed.expressions)
