"""Start mllmseg_node as its own process (optionally with a slow model) and stop it, collecting its output.

For tests and benchmarks run from a source checkout (``params_file`` starts from the checkout's config/mllmseg.yaml)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import yaml

from ..ros.startup import PACKAGE_LINE

REPO = Path(__file__).resolve().parents[2]
STEP_STARTED = "slow model: inference step started"  # slow_node.py prints it as each model step begins


def node_command() -> list[str]:
    script = shutil.which("mllmseg_node", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "mllmseg_ros.ros.node"]


def params_file(folder: Path, **overrides) -> Path:
    """The shipped config/mllmseg.yaml with ``overrides``, written as a user's own params file."""
    params = yaml.safe_load((REPO / "config" / "mllmseg.yaml").read_text())
    params["/**"]["ros__parameters"].update(overrides)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def params_yaml(path: Path, texts: dict[str, str], key: str = "/**", extra: str = "") -> Path:
    """A params file with each value written as a person writes it (``off``, ``1``; not as yaml.dump quotes it)."""
    lines = [f"{key}:", "  ros__parameters:", *(f"    {name}: {text}" for name, text in texts.items())]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


class NodeProcess:
    """A running node; its output is read as it comes (``wait_for_output``) and kept in ``output``."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self._lines)

    def wait_for_output(self, text: str, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if time.monotonic() > deadline or self.process.poll() is not None:
                return text in self.output
            time.sleep(0.05)
        return True

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)
        return self.output


@contextmanager
def run_node(ros_args: list[str], delay_s: float | None = None) -> Iterator[NodeProcess]:
    """The node's entry point (or ``slow_node.py`` adding ``delay_s`` to every inference) with ``--ros-args``."""
    env = dict(os.environ)
    if delay_s is None:
        command = node_command()
    else:
        command = [sys.executable, "-m", "mllmseg_ros.tools.slow_node"]
        env["MLLMSEG_TEST_DELAY_S"] = str(delay_s)
    process = subprocess.Popen(command + ["--ros-args", *ros_args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env)
    node = NodeProcess(process)
    try:
        yield node
    finally:
        node.stop()
    # The process ran this checkout's code, not another clone's installed in the venv.
    assert f"{PACKAGE_LINE}{REPO / 'mllmseg_ros'}\n" in node.output, node.output[-3000:]
