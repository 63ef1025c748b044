"""Spoken commands -> referring expressions."""
from __future__ import annotations

import re
from typing import Sequence

from .prompt import clean_expression

# Leading phrases a robot operator says before naming the object ("pick up the red cup"). Longest match first.
DEFAULT_COMMAND_PREFIXES: tuple[str, ...] = (
    "please", "can you", "could you", "would you", "robot", "hey robot", "okay", "ok", "now", "then", "and",
    "pick up", "pick", "grab", "grasp", "take", "get", "fetch", "bring me", "bring", "hand me", "give me", "hold",
    "go to", "go towards", "go toward", "move to", "move towards", "navigate to", "drive to", "walk to", "approach",
    "find", "look at", "look for", "point at", "point to", "show me", "locate", "segment", "track", "follow",
    "where is", "where's", "select", "choose", "put down", "push", "open", "close",
)


def normalize_command(command: str, prefixes: Sequence[str] = DEFAULT_COMMAND_PREFIXES) -> list[str]:
    """A spoken command -> the referring expressions the model was trained on.

    "Grab the BLUE bowl!" -> ["the blue bowl"]; "pick the red cup; the green box" -> ["the red cup", "the green box"].
    Targets are separated by ';'. Leading phrases from ``prefixes`` are removed repeatedly ("please pick up ...").
    Raises ValueError for an empty command or a target that is empty after normalisation.
    """
    if not isinstance(command, str):
        raise ValueError(f"command must be a string, got {type(command).__name__}")
    if not command.strip():
        raise ValueError("command is empty")
    ordered = sorted({p.lower() for p in prefixes}, key=len, reverse=True)
    expressions = []
    for part in command.split(";"):
        text = re.sub(r"[!?,.:\"“”]+", " ", part.lower())
        text = " ".join(text.split())
        changed = True
        while changed and text:
            changed = False
            for prefix in ordered:
                if text == prefix or text.startswith(prefix + " "):
                    text = text[len(prefix):].strip()
                    changed = True
                    break
        text = clean_expression(text)
        if not text:
            raise ValueError(f"no object named in {part.strip()!r}")
        expressions.append(text)
    return expressions
