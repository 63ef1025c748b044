"""The tracker's package along its seams (issue 31): one settings tree, a phase enum, no test-only dependency at run
time.

Checked to fail before the change: main's engine/tracking.py had no TrackerConfig.colour (target_colours.py built its
ColourConfig with defaults, out of reach) and marked a hidden track with hidden_steps=-1 instead of a phase."""
from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np

from mllmseg_ros.engine import tracking
from mllmseg_ros.engine.tracking import MaskTracker, TrackerConfig, TrackPhase

PACKAGE = Path(tracking.__file__).parent


def _leaves(config, path=()):
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, path + (field.name,))
        else:
            yield path + (field.name,)


def test_every_settings_class_hangs_off_tracker_config_and_nothing_builds_its_own():
    """Every *Config dataclass of the package is reached from TrackerConfig, and no module outside config.py makes
    one with defaults (a setting made that way cannot be changed from outside)."""
    reached = {type(TrackerConfig())}
    stack = [TrackerConfig()]
    while stack:
        for field in dataclasses.fields(stack.pop()):
            default = field.default_factory() if field.default_factory is not dataclasses.MISSING else None
            if dataclasses.is_dataclass(default):
                reached.add(type(default))
                stack.append(default)
    declared = {getattr(tracking.config, name) for name in dir(tracking.config) if name.endswith("Config")
                and dataclasses.is_dataclass(getattr(tracking.config, name))}
    assert declared <= reached, declared - reached
    for module in PACKAGE.glob("*.py"):
        if module.name == "config.py":
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "").endswith("Config"):
                # the tree's root, TrackerConfig(), is the one default a caller may leave out
                assert node.func.id == "TrackerConfig", f"{module.name}:{node.lineno} builds a {node.func.id} of its own"


def test_a_setting_deep_in_the_tree_reaches_the_tracker():
    """The colour ring (once unreachable) changes what the tracker learns of a target."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    mask = np.zeros((120, 160), bool)
    mask[40:80, 60:100] = True
    ratios = []
    for ring_px in (4, 30):
        config = dataclasses.replace(TrackerConfig(), colour=dataclasses.replace(TrackerConfig().colour, ring_px=ring_px))
        tracker = MaskTracker(config)
        tracker.add_frame(image, 0)
        tracker.remember(image, 0)
        [state] = tracker.anchor(0, [mask])
        assert state.phase is TrackPhase.TRACKING
        ratios.append(tracker._tracks[0].reference.colours.log_ratio.copy())
    assert not np.array_equal(*ratios)
    assert len(list(_leaves(TrackerConfig()))) >= 10


def test_scikit_image_is_not_imported_by_the_node_or_the_tracker():
    code = ("import sys, mllmseg_ros.ros.node, mllmseg_ros.engine.tracking, mllmseg_ros.tools.cli; "
            "sys.exit(1 if 'skimage' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=300).returncode == 0
