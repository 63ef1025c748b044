"""The tests test this checkout: its package is the one imported, and scripts/setup.sh re-installs when the checkout
moves (the editable install points at a path; a venv carried over from another clone would run that clone's code).
The node's own processes are checked in mllmseg_ros/tools/node_process.py (the node logs where it runs from)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

import mllmseg_ros

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_imported_is_this_checkouts():
    assert Path(mllmseg_ros.__file__).resolve().parent == ROOT / "mllmseg_ros"


def test_the_setup_stamp_names_this_checkout():
    venv = ROOT / ".venv"
    if Path(sys.prefix).resolve() != venv.resolve():
        pytest.skip("not running in this checkout's scripts/setup.sh venv (colcon or a sourced ROS)")
    stamp = (venv / ".setup-stamp").read_text().split()
    assert f"checkout={ROOT.resolve()}" in stamp  # another path in the stamp makes setup.sh install again
