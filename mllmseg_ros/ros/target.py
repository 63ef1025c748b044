"""The target the node answers: the last accepted command, shared by the command callback and the worker threads.

A stop is never late: every result about a target is published through ``publish_if_current``, which holds the
publish gate while it checks that the target is still current and publishes; ``take`` and ``clear`` take the same
gate. So once a stop (or a new target) has returned, nothing more about the old target is published.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class ActiveCommand:
    text: str
    expressions: list[str]
    serial: int  # every new target has a new one: an answer to an older serial is not published
    received: float  # time.monotonic() when it arrived: frames much older than this never answer it


class Target:
    """Set, cleared or kept by commands; ``status`` says what became of the last one (for /diagnostics)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Held while a result is published; a stop waits for that one publication (milliseconds), never longer.
        self._publish_gate = threading.RLock()
        self._command: ActiveCommand | None = None
        self._serial = 0
        self.status = "no command yet"

    @property
    def current(self) -> ActiveCommand | None:
        with self._lock:
            return self._command

    def take(self, text: str, expressions: list[str], status: str = "ok", restart: bool = False) -> tuple[ActiveCommand, bool]:
        """Make ``expressions`` the target: (the target, whether it was already the target). The same expressions
        again keep the target, its answer in flight and its track, unless ``restart`` (a stop came first)."""
        with self._publish_gate, self._lock:
            repeat = not restart and self._command is not None and self._command.expressions == list(expressions)
            if not repeat:
                self._serial += 1
                self._command = ActiveCommand(text, list(expressions), self._serial, time.monotonic())
            self.status = status
            return self._command, repeat

    def clear(self, why: str) -> bool:
        """Forget the target; True if there was one. Waits for a publication in progress, so none follows."""
        with self._publish_gate, self._lock:
            had, self._command = self._command is not None, None
            self.status = why
            return had

    def reject(self, reason: str) -> str:
        """Record that a command was not taken; returns the status, which names the target that stays."""
        with self._lock:
            kept = f"the target stays {self._command.expressions}" if self._command else "no target"
            self.status = f"rejected: {reason}; {kept}"
            return self.status

    def is_current(self, command: ActiveCommand) -> bool:
        with self._lock:
            return self._command is not None and self._command.serial == command.serial

    def publish_if_current(self, command: ActiveCommand, publish: Callable[[], None]) -> bool:
        """Run ``publish`` only while ``command`` is the target, and keep it so until ``publish`` returns."""
        with self._publish_gate:
            if not self.is_current(command):
                return False
            publish()
            return True

    def answered(self, command: ActiveCommand) -> None:
        """``once`` mode: the command is done unless a newer one replaced it meanwhile."""
        with self._lock:
            if self._command is not None and self._command.serial == command.serial:
                self._command = None
                self.status = "answered (once)"
