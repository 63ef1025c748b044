"""The target the node answers: the last accepted command, shared by the command callback and the inference thread."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class ActiveCommand:
    text: str
    expressions: list[str]
    serial: int  # every accepted command has a new one: an answer to an older serial is not published
    received: float  # time.monotonic() when it arrived: frames much older than this never answer it


class Target:
    """Set, cleared or kept by commands; ``status`` says what became of the last one (for /diagnostics)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._command: ActiveCommand | None = None
        self._serial = 0
        self.status = "no command yet"

    @property
    def current(self) -> ActiveCommand | None:
        with self._lock:
            return self._command

    def set(self, text: str, expressions: list[str], status: str = "ok") -> ActiveCommand:
        with self._lock:
            self._serial += 1
            self._command = ActiveCommand(text, expressions, self._serial, time.monotonic())
            self.status = status
            return self._command

    def clear(self, why: str) -> bool:
        """Forget the target; True if there was one."""
        with self._lock:
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

    def answered(self, command: ActiveCommand) -> None:
        """``once`` mode: the command is done unless a newer one replaced it meanwhile."""
        with self._lock:
            if self._command is not None and self._command.serial == command.serial:
                self._command = None
                self.status = "answered (once)"
