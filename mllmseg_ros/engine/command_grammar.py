"""The phrases by which spoken commands are read (``command_grammar.tsv``), and the text steps before reading:
speech-to-text spellings, non-speech markers, sentences and words.

The phrase lists live in a data file so that a new request frame, stop phrase or speech-to-text artefact is one line,
not code (the file's header explains every kind). Matching is hand-written over word tuples: the rules are fixed
phrases looked up by their first word, which no NLP library offers more simply, and a tagger would be a large
dependency that still would not know these robot-specific rules.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

GRAMMAR_FILE = Path(__file__).with_name("command_grammar.tsv")
KINDS = (
    "rewrite", "noise", "ack", "filler", "polite", "address", "request", "verb", "frame", "tag", "stop", "hold", "rest",
    "negation", "correction", "sequence", "pronoun", "question", "statement", "abbreviation",
)
SLOT = "{}"

Phrase = tuple[str, ...]
PhraseIndex = dict[str, list[Phrase]]  # first word -> the phrases starting with it, longest first

# Bracketed non-speech: Whisper's [BLANK_AUDIO], [Music], (silence), (upbeat music), *laughs*, Kaldi/Vosk's <unk>,
# [noise], and sung parts between music notes. Removed wherever they are.
_NON_SPEECH = re.compile(r"\[[^\]]*\]|\([^)]*\)|<[^>]*>|\*[^*]*\*|[♪♫][^♪♫]*[♪♫]")
_ELLIPSIS = re.compile(r"\.{2,}|…")  # a hesitation, not the end of a sentence ("pick up the... the red cup")
# A sentence ends at . ! ? followed by a space or the end ("amara.org" and "1.5" stay whole); ";" separates targets.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_PUNCTUATION = re.compile(r"(?!(?<=\d)\.(?=\d))[^\w\s'-]")  # a dot between digits ("1.5") is kept
_LATIN_LETTER = re.compile(r"[a-z]")


def phrase_index(phrases: Iterable[Phrase]) -> PhraseIndex:
    """Phrases indexed by their first word (a lookup per word instead of a scan of every phrase)."""
    index: PhraseIndex = {}
    for phrase in sorted({p for p in phrases if p}, key=len, reverse=True):
        index.setdefault(phrase[0], []).append(phrase)
    return index


def match(words: Sequence[str], i: int, index: PhraseIndex) -> int:
    """Length of the longest phrase of ``index`` that starts at ``words[i]``, 0 if none."""
    if i < len(words):
        for phrase in index.get(words[i], ()):
            if tuple(words[i:i + len(phrase)]) == phrase:
                return len(phrase)
    return 0


def words_of(text: str) -> list[str]:
    """Lower-case words; punctuation removed except apostrophes and hyphens inside words and dots inside numbers."""
    text = _PUNCTUATION.sub(" ", text.lower().replace("\u2019", "'").replace("`", "'"))
    return [w for w in (w.strip("'-") for w in text.split()) if w]


def drop(words: Sequence[str], index: PhraseIndex) -> list[str]:
    """``words`` without the phrases of ``index``, wherever they are."""
    kept, i = [], 0
    while i < len(words):
        n = match(words, i, index)
        if n:
            i += n
        else:
            kept.append(words[i])
            i += 1
    return kept


def collapse_repeats(words: Sequence[str], longest: int = 4) -> list[str]:
    """Say once what speech-to-text repeated: "the the cup", "the red the red cup". Linear in the words."""
    kept: list[str] = []
    for word in words:
        kept.append(word)
        for n in range(1, longest + 1):
            if len(kept) >= 2 * n and kept[-2 * n:-n] == kept[-n:]:
                del kept[-n:]
                break
    return kept


def ing_form(verb: str) -> str:
    """"grab" -> "grabbing", "take" -> "taking", "pick" -> "picking" (for "would you mind grabbing the cup")."""
    if verb.endswith("e") and not verb.endswith("ee") and len(verb) > 2:
        return verb[:-1] + "ing"
    if re.fullmatch(r"[^aeiou]*[aeiou][bdgmnpt]", verb):  # one syllable ending consonant-vowel-consonant
        return verb + verb[-1] + "ing"
    return verb + "ing"


@dataclass(frozen=True)
class CommandFrame:
    """Words before and after the object ("pick" {} "up"); a verb is a frame with nothing after the object. An open
    frame ("put" {} "in" *) takes anything after its tail: the object ends where the tail first follows it."""

    head: Phrase
    tail: Phrase = ()
    open: bool = False

    def slot(self, words: Sequence[str]) -> list[str] | None:
        """The object's words when ``words`` fit this frame, else None."""
        n, m = len(self.head), len(self.tail)
        if len(words) < n + m or tuple(words[:n]) != self.head:
            return None
        if not self.open:
            return list(words[n:len(words) - m]) if not m or tuple(words[-m:]) == self.tail else None
        for end in range(n + 1, len(words) - m):  # at least one word of object, something after the tail
            if tuple(words[end:end + m]) == self.tail and not _describes(words, end, m):
                return list(words[n:end])
        return None


# "the ball next to the plate", "the cup to the left of the bowl": a preposition that describes the object, not
# where it goes
_RELATION_BEFORE = {"next", "close", "closer", "closest", "nearest", "near", "adjacent", "similar", "opposite", "left",
                    "right", "up", "attached", "belonging", "pointing"}
_BACK_REFERENCES = {"it", "them", "that", "this", "those", "these", "one"}  # what was just named
_SIDES = {"left", "right", "side", "front", "back", "top", "bottom", "middle", "centre", "center", "edge"}


def _describes(words: Sequence[str], start: int, length: int) -> bool:
    after = words[start + length:start + length + 3]
    side_of = len(after) == 3 and after[0] == "the" and after[1] in _SIDES and after[2] == "of"
    return words[start - 1] in _RELATION_BEFORE or side_of


def _frame(text: str) -> CommandFrame:
    if SLOT not in text:
        return CommandFrame(tuple(text.split()))
    head, tail = text.split(SLOT, 1)
    tail_words = tuple(tail.split())
    is_open = tail_words[-1:] == ("*",)
    return CommandFrame(tuple(head.split()), tail_words[:-1] if is_open else tail_words, is_open)


@dataclass
class Grammar:
    """The phrase lists of one reading, indexed. ``load()`` reads the package's file; ``configured()`` replaces the
    lists the node's parameters own (``command_prefixes``: address, request and verb; ``stop_phrases``: stop, hold)."""

    phrases: dict[str, list[str]]
    rewrites: list[tuple[Phrase, Phrase]] = field(default_factory=list)
    guess_verbs: bool = True  # an unknown word before "the" opens a command (off with a configured verb list)

    def __post_init__(self) -> None:
        words = {kind: [tuple(p.split()) for p in self.phrases.get(kind, [])] for kind in KINDS}
        self.index = {kind: phrase_index(words[kind]) for kind in KINDS}
        self.sets = {kind: set(words[kind]) for kind in ("noise", "ack", "pronoun", "rest")}
        self.abbreviations = set(self.phrases.get("abbreviation", []))
        self.rewrite_index = phrase_index(source for source, _ in self.rewrites)
        self.rewrite_to = dict(self.rewrites)
        frames = [_frame(p) for p in self.phrases.get("verb", []) + self.phrases.get("frame", [])]
        # longest first; a closed frame before an open one of the same length ("bring {} to me" before "bring {} to *")
        self.frames = sorted(frames, key=lambda f: (len(f.head) + len(f.tail), not f.open, len(f.head)), reverse=True)
        self.headless = [f for f in self.frames if not f.head]
        self.frame_heads = phrase_index(f.head for f in self.frames)
        # "would you mind grabbing the cup": verbs in -ing after a request (never "stop following" as a new command)
        self.ing_verbs = phrase_index((ing_form(f.head[0]),) + f.head[1:] for f in self.frames if f.head and not f.tail)

    @classmethod
    def load(cls, path: Path = GRAMMAR_FILE) -> "Grammar":
        phrases: dict[str, list[str]] = {}
        rewrites: list[tuple[Phrase, Phrase]] = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split("\t")
            kind = fields[0]
            if kind not in KINDS or len(fields) != (3 if kind == "rewrite" else 2) or not fields[1].strip():
                raise ValueError(f"{path}:{number}: expected KIND<tab>PHRASE (KIND one of {', '.join(KINDS)}): {line!r}")
            if kind == "rewrite":
                rewrites.append((tuple(fields[1].split()), tuple(fields[2].split())))
            else:
                phrases.setdefault(kind, []).append(" ".join(fields[1].lower().split()))
        return cls(phrases, rewrites)

    def configured(self, prefixes: Sequence[str] | None, stop_phrases: Sequence[str] | None) -> "Grammar":
        """This grammar with the node's lists: a prefix known as an address or a request keeps that role, any other
        is a verb; a stop phrase known as a hold keeps that role, any other stops whatever follows it."""
        phrases = {kind: list(values) for kind, values in self.phrases.items()}
        if prefixes is not None:
            given = [" ".join(p.lower().split()) for p in prefixes if p.strip()]
            for kind in ("address", "request"):
                phrases[kind] = [p for p in given if p in self.phrases.get(kind, [])]
            phrases["verb"] = [p for p in given if p not in phrases["address"] + phrases["request"]]
        if stop_phrases is not None:
            given = [" ".join(p.lower().split()) for p in stop_phrases if p.strip()]
            phrases["hold"] = [p for p in given if p in self.phrases.get("hold", [])]
            phrases["stop"] = [p for p in given if p not in phrases["hold"]]
        return Grammar(phrases, self.rewrites, guess_verbs=prefixes is None)

    # --- text steps ------------------------------------------------------------------------------------------------
    def sentences(self, text: str) -> list[list[str]]:
        """``text`` (one ``;`` part) -> its sentences as words, non-speech removed and spellings rewritten. A
        sentence of only non-speech is an empty list; a sentence with no Latin letter (a hallucination in another
        language, symbols) too."""
        text = _ELLIPSIS.sub(" ", _NON_SPEECH.sub(" ", text))
        pieces = _SENTENCE_END.split(text.strip())
        merged: list[str] = []
        for piece in pieces:
            if merged and self._ends_with_abbreviation(merged[-1]):
                merged[-1] += " " + piece
            else:
                merged.append(piece)
        out = []
        for piece in merged:
            words = self._join_clauses([self.rewrite(words_of(clause)) for clause in piece.split(",")])
            out.append(words if _LATIN_LETTER.search(" ".join(words)) else [])
        return out

    def _join_clauses(self, clauses: list[list[str]]) -> list[str]:
        """The comma after a negated clause means "but": "Not the cup, the bowl." reads "not the cup but the bowl"
        (commas are otherwise dropped with the punctuation)."""
        clauses = [c for c in clauses if c]
        while len(clauses) > 1 and self._asks_about_it(clauses[-1]):  # "my glasses, have you seen them?"
            clauses.pop()
        for i, clause in enumerate(clauses[:-1]):
            opening = drop(clause, self.index["filler"])
            said_after = [w for c in clauses[i + 1:] for w in c]
            if self._only_asides(said_after):  # "Don't move, robot.": nothing said after the comma
                break
            if self.at("negation", opening) and not (self.at("hold", opening) or self.at("stop", opening)):
                if "but" not in clause:
                    return [w for c in clauses[:i + 1] for w in c] + ["but"] + [w for c in clauses[i + 1:] for w in c]
                break
        return [w for c in clauses for w in c]

    def _asks_about_it(self, clause: list[str]) -> bool:
        """A short question about what was just named: "have you seen them", "is it there", "can you see it"."""
        opener = self.at("question", clause) or self.at("request", clause)
        return bool(opener) and len(clause) <= 6 and any(w in _BACK_REFERENCES for w in clause[opener:])

    def _only_asides(self, words: list[str]) -> bool:
        """Only addresses, tags, fillers and politeness ("robot", "please", "okay")."""
        i = 0
        while i < len(words):
            n = max(self.at(kind, words, i) for kind in ("address", "tag", "filler", "polite"))
            if not n:
                return False
            i += n
        return True

    def _ends_with_abbreviation(self, piece: str) -> bool:
        words = words_of(piece)
        return piece.endswith(".") and not piece.endswith("..") and bool(words) and words[-1] in self.abbreviations

    def rewrite(self, words: Sequence[str]) -> list[str]:
        out, i = [], 0
        while i < len(words):
            n = match(words, i, self.rewrite_index)
            if n:
                out.extend(self.rewrite_to[tuple(words[i:i + n])])
                i += n
            else:
                out.append(words[i])
                i += 1
        return out

    # --- lookups -----------------------------------------------------------------------------------------------------
    def at(self, kind: str, words: Sequence[str], i: int = 0) -> int:
        """Length of the longest phrase of ``kind`` at ``words[i]``, 0 if none."""
        return match(words, i, self.index[kind])

    def only(self, kind: str, words: Sequence[str]) -> bool:
        """``words`` are made only of phrases of ``kind`` (and there is at least one)."""
        i = 0
        while i < len(words):
            n = self.at(kind, words, i)
            if not n:
                return False
            i += n
        return bool(words)

    def noise_only(self, words: Sequence[str]) -> bool:
        """Made only of noise, thanks and greetings ("Thanks for watching, and see you next time!")."""
        i, noise = 0, False
        while i < len(words):
            n = self.at("noise", words, i)
            noise = noise or bool(n)
            n = n or self.at("polite", words, i) or self.at("ack", words, i) or (1 if words[i] in ("and", "so") else 0)
            if not n:
                return False
            i += n
        return noise

    def frame_at_start(self, words: Sequence[str]) -> CommandFrame | None:
        """The longest frame that ``words`` start (and, for a frame with a tail, end) with."""
        candidates = [f for f in self.frames if f.head and words and f.head[0] == words[0]] + self.headless
        fitting = [(f, slot) for f in candidates if (slot := f.slot(words)) is not None]
        # the longest frame; among open ones, the one whose tail comes first ("put the cup back in the cupboard")
        best = max(fitting, key=lambda fs: (len(fs[0].head) + len(fs[0].tail), not fs[0].open, -len(fs[1])), default=None)
        return best[0] if best else None

    def starts_command(self, words: Sequence[str], i: int) -> bool:
        """A verb, frame or request starts at ``words[i]``."""
        return bool(match(words, i, self.frame_heads) or self.at("request", words, i))


@lru_cache(maxsize=1)
def default_grammar() -> Grammar:
    return Grammar.load()


@lru_cache(maxsize=8)  # the node reads every command with the same lists
def grammar_for(prefixes: tuple[str, ...] | None, stop_phrases: tuple[str, ...] | None) -> Grammar:
    grammar = default_grammar()
    return grammar if prefixes is None and stop_phrases is None else grammar.configured(prefixes, stop_phrases)


def default_list(*kinds: str) -> tuple[str, ...]:
    """The file's phrases of ``kinds``, in file order, without frames' slots (the defaults of the node's lists)."""
    return tuple(p for kind in kinds for p in default_grammar().phrases.get(kind, []) if SLOT not in p)
