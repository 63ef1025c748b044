"""Reading one sentence of a spoken command: its opening (a stop, a hold, a negation, a correction), then its
targets through request frames, sequences and self-corrections (see ``commands.parse_command``; the phrases are in
``command_grammar.tsv``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from .command_grammar import Grammar, collapse_repeats, drop, match
from .prompt import clean_expression

OPENINGS = ("stop", "hold", "negation", "correction")  # what a sentence can open with, first wins a tie
INSTEAD = (("instead", "of"), ("rather", "than"))  # "the bowl instead of the cup": the other one is not the target
DETERMINERS = ("the", "a", "an", "this", "that", "these", "those", "my", "your", "its", "our", "their", "his", "her")
# Words after which "not" negates a property ("the cup that is not red") rather than a second object.
COPULAS = ("is", "are", "was", "were", "be", "it's", "that's", "which", "who", "does", "do")
PREPOSITIONS = ("to", "from", "by", "of", "with", "on", "in", "at", "up")
BEING = ("is", "are", "was", "were", "isn't", "aren't", "wasn't", "weren't", "seems", "looks")
RELATIVES = ("that", "which", "who", "whose", "where", "with", "without", "when", "whom")
VERB_OBJECT_DETERMINERS = ("the", "a", "an", "my", "your", "our", "this", "that", "these", "those")
NOT_VERBS = DETERMINERS + PREPOSITIONS + (
    "all", "both", "half", "each", "every", "any", "some", "none", "most", "many", "few", "several", "only", "not",
    "and", "or", "but", "near", "under", "behind", "above", "below", "between", "beside", "inside", "outside",
    "into", "onto", "over", "for", "like", "than", "as", "about", "around", "after", "before", "without", "within",
)
PERSONAL_PRONOUNS = ("it", "them", "him", "her", "me", "us", "you")
# "right" ends a tag question ("grab the cup, right?") unless it is a side ("the cup on the right")
SIDE_WORDS = ("the", "on", "to", "your", "my", "far", "top", "bottom", "upper", "lower", "front", "at", "from", "towards")


@dataclass
class Reading:
    """What one sentence (or a part of it) says."""

    expressions: list[str] = field(default_factory=list)
    stop: bool = False  # a stop before ``expressions``
    correction: bool = False  # ``expressions`` replace the last target said before
    problems: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # why (parts of) it are not a command
    negated: list[str] = field(default_factory=list)
    held: bool = False  # a stop by a hold word alone ("No."): a correction if the next sentence names a target

    def then(self, later: "Reading") -> "Reading":
        """This reading followed by ``later``: a stop cancels what came before it, a correction the last target."""
        if later.stop:
            self.expressions, self.problems, self.stop = [], [], True
        if later.correction and self.expressions:
            self.expressions.pop()
        self.correction = self.correction or later.correction
        self.expressions += later.expressions
        self.problems += later.problems
        self.ignored += later.ignored
        self.negated += later.negated
        return self


def ignored(reason: str, negated: Sequence[str] = ()) -> Reading:
    return Reading(ignored=[reason], negated=list(negated))


class SentenceReader:
    def __init__(self, grammar: Grammar) -> None:
        self.g = grammar

    # --- sentences -------------------------------------------------------------------------------------------------
    def sentence(self, words: list[str]) -> Reading:
        if not words:
            return ignored("no speech (non-speech markers or no English words)")
        words = collapse_repeats(drop(words, self.g.index["filler"]))
        if not words:
            return ignored("only hesitations")
        said = " ".join(words)
        if tuple(words) in self.g.sets["noise"] or (self.g.noise_only(words) and not self.g.only("ack", words)):
            return ignored(f"{said!r} is what speech-to-text prints on silence or noise")
        if tuple(words) in self.g.sets["ack"] or self.g.only("polite", words):
            return ignored(f"{said!r} acknowledges; it is not a command")
        words = collapse_repeats(drop(words, self.g.index["polite"]))
        return self.clause(words)

    def opening(self, words: list[str]) -> tuple[str, int]:
        """The longest stop, hold, negation or correction phrase at the start: (kind, length); ("", 0) if none.
        "never mind" is a stop, not a negation; "no need to" a negation, not a hold."""
        found = [(self.g.at(kind, words), -rank, kind) for rank, kind in enumerate(OPENINGS)]
        length, _, kind = max(found)
        return (kind, length) if length else ("", 0)

    def clause(self, words: list[str]) -> Reading:
        """A sentence from its opening: a stop, a hold, a negation, a correction, or targets."""
        kind, n = self.opening(words)  # before addresses too: "just a second" is a hold, "just" an address
        if not n:
            words = self.strip_addresses(words)
            kind, n = self.opening(words)
        if not words:
            return ignored("nothing asked")
        if kind == "stop":
            return self.after_stop(words[n:])
        if kind == "hold":
            return self.after_hold(words[n:])
        if kind == "negation":
            return self.after_negation(words[:n], words[n:])
        if kind == "correction":  # "Sorry, the blue one." "I mean the spoon."
            later = self.clause(words[n:]) if words[n:] else Reading()
            if not later.expressions and not later.stop and words[0] in ("no", "nope", "not", "wait"):
                return Reading(stop=True, held=not words[n:])  # "Not that one.": the robot has the wrong one
            if not later.expressions:
                return later if later.stop or later.problems else ignored(f"{' '.join(words)!r} names nothing")
            later.correction = not later.stop
            return later
        if tuple(words) in self.g.sets["ack"]:
            return ignored(f"{' '.join(words)!r} acknowledges; it is not a command")
        return self.targets(words)

    def strip_addresses(self, words: list[str], leading_noise: bool = True) -> list[str]:
        while words:
            n = self.g.at("address", words)
            if not n and words[0] in ("first", "firstly") and len(words) > 1:  # "first the cup", not "first aid kit"
                n = 1 if words[1] in DETERMINERS or self.g.starts_command(words, 1) else 0
            if not n and leading_noise and words[0] in DETERMINERS and self.g.starts_command(words, 1):
                n = 1  # Vosk's "the" heard on noise before the command
            if not n:
                return words
            words = words[n:]
        return words

    def strip_rest(self, words: list[str]) -> list[str]:
        while words and (n := self.g.at("rest", words)):
            words = words[n:]
        return words

    def after_stop(self, rest: list[str]) -> Reading:
        """What follows a stop is what to stop ("stop right there", "stop tracking the mark on the wall") unless a new
        command that names an object starts right after it or after "and"/"then" ("stop, grab the cup", "stop it and
        pick up the bowl"); a verb inside what is stopped ("mark") starts nothing."""
        rest = self.strip_rest(rest)
        for i in range(len(rest)):
            n = self.g.at("sequence", rest, i) or (1 if rest[i] == "and" and self.g.starts_command(rest, i + 1) else 0)
            if n or (i == 0 and self.g.starts_command(rest, 0)):
                later = self.clause(rest[i + n:])
                if later.expressions:
                    return Reading(stop=True).then(later)
        return Reading(stop=True)

    def after_hold(self, rest: list[str]) -> Reading:
        """"wait", "no", "hold on": a stop, unless an object follows, which corrects the target."""
        rest = self.strip_rest(rest)
        if rest and (n := self.g.at("correction", rest)):
            rest = rest[n:]
        later = self.clause(rest) if rest else Reading()
        if not later.expressions:
            return Reading(stop=True, held=not rest, negated=later.negated)
        later.correction = not later.stop
        return later

    def after_negation(self, negation: list[str], rest: list[str]) -> Reading:
        said = " ".join(negation)
        if self.g.at("stop", rest) or self.g.at("hold", rest):
            return ignored(f"a negated stop ({said} {' '.join(rest)}) changes nothing")
        if "but" in rest:  # "not the cup but the bowl", "don't take the cup but the bowl"
            later = self.clause(rest[len(rest) - rest[::-1].index("but"):])
            if later.expressions:
                return later
        words, phrases, _ = self.strip_frames(self.strip_tags(list(rest)))
        if said != "not" and words and not phrases and words[0] not in DETERMINERS and not words[0][0].isdigit():
            return Reading(stop=True)  # "do not proceed", "don't go any further": a verb, not an object
        reading = self.targets(rest) if rest else Reading()
        if reading.expressions:
            return ignored(f"a negated command ({said} ...) is never a target", reading.expressions)
        return Reading(stop=True)  # "don't move", "don't do that", "don't!": stop what is going on

    # --- targets ---------------------------------------------------------------------------------------------------
    def targets(self, words: list[str]) -> Reading:
        reading = Reading()
        segments = self.split_sequence(words)
        for position, (marker, segment) in enumerate(segments):
            if segment:
                reading.then(self.target(segment))
            elif marker is not None and position == len(segments) - 1:
                reading.problems.append(f"nothing named after {marker!r}")
        return reading

    def split_sequence(self, words: list[str]) -> list[tuple[str | None, list[str]]]:
        """(marker before it, words) per target in order; the first marker is None. A plain "and" splits only
        before a new command phrase ("grab the cup and pick up the bowl"), not inside an expression."""
        segments: list[tuple[str | None, list[str]]] = [(None, [])]
        i = 0
        while i < len(words):
            n = self.g.at("sequence", words, i)
            if not n and words[i] == "and" and (i + 1 == len(words) or self.command_follows(words, i + 1)):
                n = 1
            if n:
                segments.append((" ".join(words[i:i + n]), []))
                i += n
            else:
                segments[-1][1].append(words[i])
                i += 1
        return segments

    def command_follows(self, words: Sequence[str], i: int) -> bool:
        """A command phrase starts at ``words[i]`` ("and pick up the bowl"), not a relation ("and close to it")."""
        if self.g.at("request", words, i):
            return True
        n = max((len(f.head) for f in self.g.frames if f.head and tuple(words[i:i + len(f.head)]) == f.head), default=0)
        return bool(n) and (i + n >= len(words) or words[i + n] not in PREPOSITIONS)

    def strip_tags(self, words: list[str]) -> list[str]:
        changed = True
        while changed and words:
            changed = False
            for n in range(min(len(words), 5), 0, -1):
                if self.g.at("tag", words, len(words) - n) == n:
                    words, changed = words[:-n], True
                    break
            if not changed and len(words) > 1 and words[-1] == "right" and words[-2] not in SIDE_WORDS:
                words, changed = words[:-1], True
        return words

    def strip_frames(self, words: list[str]) -> tuple[list[str], list[str], bool]:
        """Leading addresses and requests, then one verb or frame around the object, removed: (the object's words,
        the command phrases removed, whether a request still waits for an action). Requests chain ("could you go and
        get"), a verb ends the command phrase ("grab the water bottle" keeps "water")."""
        phrases: list[str] = []
        waiting = False
        while words:
            words = self.strip_addresses(words, leading_noise=not phrases)
            if not words or self.g.at("stop", words) or self.g.at("hold", words):
                break
            request = self.g.at("request", words)
            frame = self.g.frame_at_start(words)
            size = len(frame.head) + len(frame.tail) if frame else 0
            if request and request >= size:
                phrases.append(" ".join(words[:request]))
                words, waiting = words[request:], True
                continue
            if frame:
                phrases.append(" ".join(frame.head + ("...",) + frame.tail if frame.tail else frame.head))
                words = frame.slot(words)
            elif waiting and (n := match(words, 0, self.g.ing_verbs)):
                phrases.append(" ".join(words[:n]))
                words = words[n:]
            elif not phrases and self.unknown_verb(words):
                phrases.append(words[0])
                words = words[1:]
            else:
                break
            return self.strip_addresses(words, leading_noise=False), phrases, False
        return words, phrases, waiting

    def unknown_verb(self, words: list[str]) -> bool:
        """A word the grammar does not know, right before a determiner, opens an imperative ("press the button",
        "hit the red switch"); quantifiers, prepositions and known openers do not ("all the cups", "maybe the cup")."""
        first = words[0]
        return (self.g.guess_verbs and len(words) > 2 and words[1] in VERB_OBJECT_DETERMINERS and first.isalpha() and first not in NOT_VERBS
                and not any(self.g.at(kind, words) for kind in ("question", "statement", "pronoun", "ack", "noise")))

    def target(self, words: list[str]) -> Reading:
        """One target's words -> its expression, a stop, or why it is none."""
        words = self.strip_tags(words)
        words, phrases, waiting = self.strip_frames(words)
        if words and (self.g.at("stop", words) or self.g.at("hold", words)):
            return self.clause(words)  # "can you stop", "and then wait"
        marker, corrected = self.last_correction(words)
        if marker is not None:
            corrected = self.strip_tags(corrected)
            if corrected and (self.g.at("stop", corrected) or self.g.at("hold", corrected)):
                return self.clause(corrected)  # "the cup no wait cancel that"
            words, more, waiting = self.strip_frames(corrected)
            phrases += more
            if not words:
                return Reading(problems=[f"nothing named after the correction {marker!r}"])
        negated: list[str] = []
        if words and words[0] == "not":
            if "but" not in words:
                return ignored("a negation names no object to take", [clean_expression(" ".join(words[1:]))])
            words, _, _ = self.strip_frames(words[len(words) - words[::-1].index("but"):])
        words, instead = self.cut_instead(words)
        words, negated = self.cut_negation(words)
        return self.expression(words, phrases, waiting, negated + instead)

    def last_correction(self, words: list[str]) -> tuple[str | None, list[str]]:
        """(the last correction's words, what follows it); (None, words) without a correction."""
        marker, rest, i = None, words, 0
        while i < len(words):
            n = self.g.at("correction", words, i)
            if not n and words[i] in ("no", "nope") and (
                i + 1 == len(words) or words[i + 1] in DETERMINERS or self.g.starts_command(words, i + 1)
                or self.g.at("stop", words, i + 1) or self.g.at("hold", words, i + 1)
            ):
                n = 1  # "the cup no the bowl"; "the box with no lid" keeps its "no"
            if n and i > 0:
                marker, rest = " ".join(words[i:i + n]), words[i + n:]
            i += max(n, 1)
        return marker, rest

    def cut_instead(self, words: list[str]) -> tuple[list[str], list[str]]:
        """"the bowl instead of the cup" -> the bowl; "instead of the cup, get the bowl" -> the bowl (the cup
        negated in both)."""
        for i in range(len(words)):
            n = next((len(p) for p in INSTEAD if tuple(words[i:i + len(p)]) == p), 0)
            if not n:
                continue
            if i > 0:
                return words[:i], [clean_expression(" ".join(words[i + n:]))]
            for j in range(n + 1, len(words)):  # the other object ends where a command phrase starts
                if self.g.starts_command(words, j):
                    object_words, _, _ = self.strip_frames(words[j:])
                    return object_words, [clean_expression(" ".join(words[n:j]))]
            return [], [clean_expression(" ".join(words[n:]))]
        return words, []

    def cut_negation(self, words: list[str]) -> tuple[list[str], list[str]]:
        """"the red cup not the blue one" -> the red cup (the blue one negated); "the cup that is not red" stays."""
        for i in range(1, len(words)):
            n = self.g.at("negation", words, i)
            if not n or (words[i] == "not" and (i + 1 >= len(words) or words[i + 1] not in DETERMINERS)):
                continue
            if words[i - 1] in COPULAS:
                continue
            kept = words[:i - 1] if words[i - 1] in ("but", "and", "or") else words[:i]
            rest = self.targets(words[i + n:]) if i + n < len(words) else Reading()
            return kept, rest.expressions + [clean_expression(" ".join(words[i + n:]))] * (not rest.expressions)
        return words, []

    @staticmethod
    def states(words: list[str]) -> bool:
        """A verb of being outside a relative clause: "the coffee is ready", not "the cup that is red"."""
        for i, word in enumerate(words):
            if word in RELATIVES and i > 0:
                return False
            if word in BEING:
                return True
        return False

    def expression(self, words: list[str], phrases: list[str], waiting: bool, negated: list[str]) -> Reading:
        said = " ".join(words)
        heard = f" after {phrases[-1]!r}" if phrases else ""
        if not phrases and words:
            if tuple(words) in self.g.sets["ack"]:
                return ignored(f"{said!r} acknowledges; it is not a command")
            if self.g.at("question", words):
                return ignored(f"{said!r} is a question, not a request naming an object")
            if self.g.at("statement", words) or self.states(words):
                return ignored(f"{said!r} is a statement, not a request")
        if words and (self.g.only("pronoun", words) or all(w in DETERMINERS for w in words)) or not (words or waiting):
            what = f"{said!r} names no object" if words else "no object named"
            return Reading(problems=[f"{what}{heard}: say what it is"], negated=negated)
        if waiting:
            return ignored(f"no action I can take{heard}: {said!r}" if words else f"nothing asked{heard}")
        if words[0] in PERSONAL_PRONOUNS:
            return Reading(problems=[f"{said!r} names no object{heard}: say what it is"], negated=negated)
        expression = clean_expression(said)
        return Reading(expressions=[expression], negated=negated)
