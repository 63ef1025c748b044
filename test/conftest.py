"""Shared fixtures: the golden reference checkpoint (decompressed once per session into a temp dir)."""
from __future__ import annotations

import lzma
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _claim_ros_domain() -> int:
    """A ROS domain no other test run on this machine holds: a lock file per domain, kept for the whole session.

    Two runs in one domain see each other's nodes (a result of one counts in the other); the pid alone collides.
    """
    import fcntl
    import random

    candidates = list(range(1, 102))  # 1..101: the ids whose DDS ports fit below Linux's ephemeral range
    random.Random(os.getpid()).shuffle(candidates)
    for domain in candidates:
        handle = open(Path(tempfile.gettempdir()) / f"mllmseg_ros_test_domain_{domain}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _DOMAIN_LOCKS.append(handle)  # released when this process exits
        return domain
    return 1 + os.getpid() % 100


_DOMAIN_LOCKS: list = []
# ROS 2 isolation for tests that start nodes: a domain of our own, no traffic off this machine, logs in a temp dir.
os.environ["ROS_DOMAIN_ID"] = str(_claim_ros_domain())
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="mllmseg_ros_log_"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shared import require_shared  # noqa: E402


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return require_shared() / "golden"


@pytest.fixture(scope="session")
def golden_checkpoint(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The official-format tiny checkpoint, weights decompressed next to copies of its small files."""
    folder = tmp_path_factory.mktemp("golden_checkpoint")
    source = golden_dir / "checkpoint"
    for item in source.iterdir():
        if item.suffix != ".xz":
            shutil.copy(item, folder / item.name)
    with lzma.open(source / "model.safetensors.xz") as packed, open(folder / "model.safetensors", "wb") as out:
        shutil.copyfileobj(packed, out)
    return folder


@pytest.fixture(scope="session")
def golden_model(golden_checkpoint: Path):
    from mllmseg_ros.model import MLLMSegModel

    return MLLMSegModel.from_pretrained(golden_checkpoint)


# torch's threads as the node's default, one fewer than the usable cores (ros/engine_setup.py): beside the other
# processes of a shared 2-core machine, two threads made the demo model's held-out test take 284 s instead of 14 s
# (benchmarks/README.md, "Threads on a busy CPU"). A node made in the test process sets its own count; it is put back.
TORCH_THREADS = max(1, len(os.sched_getaffinity(0)) - 1)


@pytest.fixture(autouse=True)
def _torch_threads():
    try:
        import torch
    except ImportError:
        yield
        return
    if torch.get_num_threads() != TORCH_THREADS:
        torch.set_num_threads(TORCH_THREADS)
    yield
    if torch.get_num_threads() != TORCH_THREADS:
        torch.set_num_threads(TORCH_THREADS)
