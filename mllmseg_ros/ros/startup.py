"""The node's process: start (even with a params file rcl cannot read), spin, and stop cleanly on SIGINT/SIGTERM.

``ros2 launch`` sends SIGINT, waits a few seconds, then escalates to SIGTERM and SIGKILL. A model step cannot be
interrupted, so stopping does not wait for it: the output gate closes at once (nothing is published after), the
threads are told to stop, ROS is shut down (its logs flushed), and the process ends. When a model step is still
running then, the process ends without Python's own teardown (os._exit): tearing down torch's modules beside a
thread inside a torch kernel is slow (about a second here) and not safe.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

from .param_sources import drop_unparseable

MAX_DROPPED_ARGUMENTS = 16
PACKAGE_LINE = "running mllmseg_ros from "


def init_ros(argv: list[str]) -> tuple[list[str], list[str]]:
    """``rclpy.init`` on ``argv``; a params file or -p rule that rcl cannot parse is left out (and said why) instead
    of ending the process with a traceback. Returns (the arguments used, the problems)."""
    problems = []
    for _ in range(MAX_DROPPED_ARGUMENTS):
        try:
            rclpy.init(args=argv)
            return argv, problems
        except Exception as exc:  # rclpy raises its RCLError (not importable under one name across distros)
            dropped = drop_unparseable(argv, str(exc))
            if dropped is None:
                raise
            argv, problem = dropped
            problems.append(problem)
    rclpy.init(args=argv)
    return argv, problems


def run(node_factory: Callable[..., object], args: list[str] | None = None) -> None:
    argv, problems = init_ros(list(sys.argv if args is None else args))
    node = node_factory(argv=argv, startup_problems=problems)
    # Which installation runs (a venv made in another clone would run that clone's code); the tests read it too.
    node.get_logger().info(f"{PACKAGE_LINE}{Path(__file__).resolve().parents[1]}")
    # Single-threaded on purpose. The callbacks only hand work over (inference has its own thread, ~/segment answers
    # from one of its own, so a command is never queued behind either), and rclpy's MultiThreadedExecutor is slow
    # with large messages (measured in benchmarks/README.md, "Node overhead"). Composed into a MultiThreadedExecutor, the
    # node's callback groups (commands, cameras, service, timers) run side by side.
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    if node.get_parameter("autostart").value is True:
        node.trigger_configure()
        if node.settings is not None:
            node.trigger_activate()
    else:
        name = node.get_fully_qualified_name()
        node.get_logger().info(
            f"unconfigured: waiting for a lifecycle configure and activate "
            f"(ros2 lifecycle set {name} configure, then activate), or start with autostart:=true"
        )
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        mid_step = node.shutdown_worker()
        executor.remove_node(node)
        node.destroy_node()
        rclpy.try_shutdown()
        if mid_step:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
