"""Spoken commands in the node: read each one, decide what it does to the target, and say what was understood.

The ``command`` subscription has a callback group of its own and its callback only parses and swaps the target (well
under a millisecond), so a stop is never queued behind inference or a ``~/segment`` call (the service answers from
a thread of its own). It lives from configure to cleanup: a command received while the node is inactive is applied
to the target at once (a stop clears it) and takes effect on activate, which logs what it resumes with.

Outcomes (``CommandStatus``): a new target (after a stop when the command stopped first), stopped, a repeat (the
same expressions again keep the target, its answer in flight and its track; in ``once`` mode a repeat after the
answer asks again, as the answered target is gone), ignored (not a command) or rejected (nothing usable; the target
stays). Each is published latched on ``~/command_status``, kept for ``/diagnostics``, and logged: every distinct
outcome, repeats of the same one at most once per ``LOG_REPEAT_S``.
"""
from __future__ import annotations

import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header, String

from ..engine.commands import DEFAULT_COMMAND_PREFIXES, DEFAULT_STOP_PHRASES, ParsedCommand, parse_command
from .command_subscription import CommandSubscription
from .engine_setup import EngineHandle
from .qos import overridable, own_profile
from .target import Target

if TYPE_CHECKING:
    from rclpy.node import Node

    from .params import NodeSettings

# Latched (transient local): a voice front end started later still gets the last status (with depth 1), or the last
# few. Depth 10, not 1: a reliable writer keeping one sample replaces a status not yet delivered by the next one, and
# a stop followed at once by a new command must reach the front end as two statuses.
STATUS_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
LOG_REPEAT_S = 5.0  # the same outcome of the same command is logged at most this often (a behaviour tree re-sends)
LOG_KEYS = 256  # distinct outcomes remembered for that (oldest forgotten first)

TARGET, STOPPED, REPEAT, IGNORED, REJECTED = 1, 2, 3, 4, 5  # CommandStatus outcomes
OUTCOME_NAMES = {TARGET: "target", STOPPED: "stopped", REPEAT: "repeat", IGNORED: "ignored", REJECTED: "rejected"}
QUIET = ("speech-to-text prints", "acknowledges", "only hesitations", "no speech", "nothing asked", "empty")


def command_parser(settings: "NodeSettings") -> Callable[[str], ParsedCommand]:
    """The node's reading of a spoken command, with its ``command_prefixes``, ``stop_phrases`` and
    ``max_command_chars`` (empty lists: the built-in ones): one reader for the ``command`` topic and ``~/segment``."""
    prefixes = settings.command_prefixes or DEFAULT_COMMAND_PREFIXES
    stop_phrases = settings.stop_phrases or DEFAULT_STOP_PHRASES
    return lambda text: parse_command(text, prefixes, stop_phrases, settings.max_command_chars)


@dataclass
class Outcome:
    """What one command did: the fields of a CommandStatus message."""

    command: str
    outcome: int
    stopped: bool = False
    expressions: list[str] = field(default_factory=list)
    target: list[str] = field(default_factory=list)
    target_id: int = 0
    reason: str = ""
    reply: str = ""
    active: bool = True

    @property
    def name(self) -> str:
        return OUTCOME_NAMES[self.outcome]


def _listed(expressions: list[str]) -> str:
    return ", then ".join(expressions)


def reply_for(outcome: Outcome, parsed: ParsedCommand | None, had_target: bool) -> str:
    """A short sentence a voice front end can speak back; empty for noise and thanks, which need no answer."""
    later = "" if outcome.active else " when I resume"
    if outcome.outcome == TARGET:
        if parsed is not None and parsed.corrected:
            return f"Got it: {_listed(outcome.expressions)} instead{later}."
        return f"{'Stopped. Now l' if outcome.stopped and had_target else 'L'}ooking for {_listed(outcome.expressions)}{later}."
    if outcome.outcome == REPEAT:
        return f"Still looking for {_listed(outcome.expressions)}."
    if outcome.outcome == STOPPED:
        return "Stopped." if had_target else "Stopped; I had no target."
    if outcome.outcome == IGNORED:
        if parsed is not None and parsed.negated:
            return f"Okay, not {_listed(list(parsed.negated))}."
        if any(word in outcome.reason for word in QUIET):
            return ""
        return "I only look for objects: tell me what to find."
    return f"Sorry, I did not get that: {outcome.reason}."


class OutcomeLog:
    """Logs each distinct outcome; the same one again (same outcome, same expressions or reason) at most once per
    ``repeat_s``, saying how many were not logged. rclpy's throttle is per call site, so it would hide a different
    rejection behind the last one."""

    def __init__(self, logger, repeat_s: float = LOG_REPEAT_S, keys: int = LOG_KEYS) -> None:
        self.logger, self.repeat_s, self.keys = logger, repeat_s, keys
        self._seen: OrderedDict[tuple, list] = OrderedDict()  # key -> [last logged (monotonic), not logged since]

    def log(self, outcome: Outcome, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        detail = tuple(outcome.expressions) if outcome.outcome in (TARGET, REPEAT) else outcome.reason
        key = (outcome.outcome, outcome.stopped, outcome.active, detail)
        entry = self._seen.get(key)
        if entry is not None and now - entry[0] < self.repeat_s:
            entry[1] += 1
            return False
        skipped = entry[1] if entry is not None else 0
        self._seen[key] = [now, 0]
        self._seen.move_to_end(key)
        while len(self._seen) > self.keys:
            self._seen.popitem(last=False)
        text = f"command {outcome.command!r}: {outcome.name}"
        if outcome.outcome in (TARGET, REPEAT):
            text += f" {outcome.expressions}" + (" (after a stop)" if outcome.stopped else "")
        if outcome.reason:
            text += f" ({outcome.reason})"
        if not outcome.active:
            text += "; the node is inactive: applies on activate"
        if skipped:
            text += f" [{skipped} more like it in the last {self.repeat_s:g} s]"
        if outcome.outcome == REJECTED:  # rclpy ties a severity to its call site: one call per severity
            self.logger.warning(text)
        else:
            self.logger.info(text)
        return True


class CommandHandler:
    def __init__(self, node: "Node", target: Target, engine: EngineHandle, settings: Callable[[], NodeSettings | None],
                 parse: Callable[[str], ParsedCommand], active: Callable[[], bool], report: Callable[[str], None],
                 wake: Callable[[], None]) -> None:
        """``node`` holds the subscription and the status publisher (and gives the log and the clock); commands
        change ``target``; ``engine``'s segmenter says whether a prompt fits the model; ``settings()`` is None
        while the node is not configured, ``parse`` reads a command, ``active()`` says whether the node is active;
        ``report(problem)`` keeps a rejected or partly used command for /diagnostics; ``wake()`` is called when a
        command names a target."""
        self.node, self.target, self.engine, self.settings, self.parse = node, target, engine, settings, parse
        self.active, self.report, self.wake = active, report, wake
        self.group = MutuallyExclusiveCallbackGroup()  # never behind the camera, the service or the timers' groups
        self.log = OutcomeLog(node.get_logger())
        # reliable, and latched while the planner publishes latched (ros/command_subscription.py)
        self.subscription = CommandSubscription(node, "command", self._on_message, self.group)
        self.publisher = None
        self.last: Outcome | None = None
        self.counts: Counter[str] = Counter()
        self._while_inactive = 0  # commands received since the last activate while inactive

    # lifecycle -------------------------------------------------------------------------------------------------------
    def create(self) -> None:
        """On configure: listen from now on, also while inactive."""
        from ..msg import CommandStatus

        self.publisher = self.node.create_publisher(CommandStatus, "~/command_status", own_profile(STATUS_QOS),
                                                    qos_overriding_options=overridable())
        self.subscription.create()

    def destroy(self) -> None:
        """On cleanup: stop listening (the target is forgotten with the model)."""
        self.subscription.destroy()
        if self.publisher is not None:
            self.node.destroy_publisher(self.publisher)
        self.publisher = None

    def match_publishers(self) -> None:
        """Latched or volatile, as the command's publishers are now (the node's watchdog calls it)."""
        self.subscription.match()

    def activated(self) -> None:
        """Say what the node resumes with when commands came while it was inactive."""
        if self._while_inactive:
            current = self.target.current
            what = f"the target {current.expressions}" if current else "no target"
            self.node.get_logger().info(
                f"activated with {what}, after {self._while_inactive} command(s) received while inactive"
                + (f" (the last: {self.last.command!r}, {self.last.name})" if self.last else ""))
        self._while_inactive = 0

    # commands ---------------------------------------------------------------------------------------------------------
    def _on_message(self, msg: String) -> None:
        self.handle(msg.data)

    def handle(self, text: str) -> Outcome:
        target, settings, segmenter, active = self.target, self.settings(), self.engine.segmenter, self.active()
        before = target.current
        parsed = None
        if settings is None or segmenter is None:
            outcome = Outcome(text, REJECTED, reason="the node is not configured")
        elif len(text) > settings.max_command_chars:  # before any parsing: a huge string must not block this thread
            outcome = Outcome(text, REJECTED, reason=f"command of {len(text)} characters is longer than "
                                                      f"max_command_chars ({settings.max_command_chars})")
        else:
            try:
                parsed = self.parse(text)
                outcome = self._decide(text, parsed, segmenter)
            except ValueError as exc:
                outcome = Outcome(text, REJECTED, reason=str(exc))
        if outcome.outcome == REJECTED:
            target.reject(outcome.reason)
            self.report(f"{text!r}: {outcome.reason}")
        current = target.current
        outcome.target, outcome.target_id = (list(current.expressions), current.serial) if current else ([], 0)
        outcome.active = active
        outcome.reply = reply_for(outcome, parsed, had_target=before is not None)
        self._publish(outcome)
        if outcome.outcome in (TARGET, REPEAT):
            self.wake()
        return outcome

    def _decide(self, text: str, parsed: ParsedCommand, segmenter) -> Outcome:
        """Apply ``parsed`` to the target. A stop clears it first; new expressions then become the target unless they
        are the current ones (a repeat); a negation of the current target stops it."""
        target = self.target
        if parsed.stop and not parsed.expressions:
            why = parsed.reason if not parsed.text.strip() else f"stopped by {text!r}"
            target.clear(why)
            return Outcome(text, STOPPED, stopped=True, reason=why)
        if parsed.expressions:
            expressions = list(parsed.expressions)
            if parsed.stop:
                target.clear(f"stopped by {text!r}")
            try:
                segmenter.prompt_ids(expressions)  # ValueError for prompts longer than the model's context
            except ValueError as exc:
                if not parsed.stop:
                    raise
                return Outcome(text, STOPPED, stopped=True, reason=f"stopped; the target after it was not taken: {exc}")
            status = f"partly used: {'; '.join(parsed.problems)}" if parsed.problems else "ok"
            _, repeat = target.take(text, expressions, status)
            if parsed.problems:
                self.report(f"{text!r}: {status}")
            return Outcome(text, REPEAT if repeat else TARGET, stopped=parsed.stop, expressions=expressions,
                           reason="; ".join(parsed.problems))
        current = target.current
        if parsed.negated and current is not None and set(parsed.negated) & set(current.expressions):
            why = f"{text!r} negates the current target"
            target.clear(why)
            return Outcome(text, STOPPED, stopped=True, reason=why)
        if parsed.ignored:
            target.status = f"ignored: {parsed.reason}" + (f"; the target stays {current.expressions}" if current else "")
            return Outcome(text, IGNORED, reason=parsed.reason)
        return Outcome(text, REJECTED, reason=parsed.reason or "no object named")

    def _publish(self, outcome: Outcome) -> None:
        from ..msg import CommandStatus

        self.last = outcome
        self.counts[outcome.name] += 1
        if not outcome.active:
            self._while_inactive += 1
        self.log.log(outcome)
        if self.publisher is not None:
            self.publisher.publish(CommandStatus(
                header=Header(stamp=self.node.get_clock().now().to_msg()), command=outcome.command,
                outcome=outcome.outcome, stopped=outcome.stopped, expressions=outcome.expressions,
                target=outcome.target, target_id=outcome.target_id, reason=outcome.reason, reply=outcome.reply,
                active=outcome.active))

    def diagnostics(self) -> dict[str, object]:
        """The last command's outcome and the counts, for /diagnostics."""
        last = self.last
        values: dict[str, object] = {
            "command_status": self.target.status,
            "command_outcome": last.name if last else "",
            "command_reply": last.reply if last else "",
        }
        values.update({f"commands_{name}": self.counts[name] for name in OUTCOME_NAMES.values()})
        return values
