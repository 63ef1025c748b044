"""The package's rooms and their doors: imports point one way (tools -> ros / training -> data -> engine -> model),
ROS stays in the ros and tools rooms, no package file grows past 400 lines, and the node's helpers get what they use,
not the node's state."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mllmseg_ros"
# A room may import from rooms of a lower rank only. ros and training share a rank: neither imports the other.
RANKS = {"model": 0, "engine": 1, "data": 2, "ros": 3, "training": 3, "tools": 4}
INTERFACES = {"msg", "srv"}  # the generated ROS interfaces: for the ros and tools rooms only
ROS_MODULES = {"rclpy", "sensor_msgs", "std_msgs", "geometry_msgs", "diagnostic_msgs", "lifecycle_msgs",
               "rcl_interfaces", "visualization_msgs", "vision_msgs", "builtin_interfaces", "rosbags"}
MAX_LINES = 400
# Files allowed past MAX_LINES for now, each with the reason (remove the entry when the file is split).
OVER_THE_LIMIT: dict[str, str] = {}
# ros/ modules allowed to read MLLMSegNode's own attributes (its state and methods, beyond an rclpy node's), each with
# the reason; the other helpers get an rclpy node for their endpoints at most (docs/architecture.md).
READS_THE_NODE: dict[str, str] = {
    "ros/node.py": "the node itself",
    "ros/startup.py": "runs the node: starts it, and activates it when configure succeeded",
    "ros/diagnostics.py": "the node's /diagnostics status: its counters, problems and its helpers' figures",
}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _room(path: Path) -> str | None:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else None


def _imports(path: Path) -> list[tuple[str, int]]:
    """(the first part of each imported module, resolved against the package: a room, 'msg', or an outside
    module, line number)."""
    found = []
    package_parts = list(path.relative_to(PACKAGE).parent.parts)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                found.append((parts[1] if parts[0] == "mllmseg_ros" and len(parts) > 1 else parts[0], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - (node.level - 1)]
                parts = base + (node.module.split(".") if node.module else [])
                names = parts or [alias.name for alias in node.names]
                found.extend((name, node.lineno) for name in names[:1])
            elif node.module:
                parts = node.module.split(".")
                found.append((parts[1] if parts[0] == "mllmseg_ros" and len(parts) > 1 else parts[0], node.lineno))
    return found


def test_imports_point_one_way():
    wrong = []
    for path in _modules():
        room = _room(path)
        if room is None:
            continue
        for target, line in _imports(path):
            where = f"{path.relative_to(PACKAGE)}:{line} ({room} -> {target})"
            if target in RANKS and target != room and RANKS[target] >= RANKS[room]:
                wrong.append(where)
            if target in INTERFACES and room not in ("ros", "tools"):
                wrong.append(where)
            if target in ROS_MODULES and room not in ("ros", "tools"):
                wrong.append(where)
    assert not wrong, "imports against the rooms' order:\n" + "\n".join(wrong)


def test_the_checker_resolves_relative_imports_to_rooms():
    """``from ..model import X`` in engine/ is the model room, ``from .prompt import Y`` stays in engine (else the test
    above could pass on anything)."""
    engine = {target for target, _ in _imports(PACKAGE / "engine" / "segmenter.py")}
    assert {"model", "engine", "torch"} <= engine
    assert {"engine", "rclpy"} <= {target for target, _ in _imports(PACKAGE / "ros" / "node.py")}
    assert {"engine", "ros"} <= {target for target, _ in _imports(PACKAGE / "tools" / "slow_node.py")}


def test_no_package_file_over_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in _modules()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    unexplained = {name: n for name, n in long.items() if name not in OVER_THE_LIMIT}
    assert not unexplained, f"split these (at most {MAX_LINES} lines): {unexplained}"
    stale = sorted(set(OVER_THE_LIMIT) - set(long))
    assert not stale, f"no longer over the limit: take them out of OVER_THE_LIMIT: {stale}"


def _node_state() -> set[str]:
    """What MLLMSegNode adds to an rclpy node: its methods, properties and the attributes it sets on itself."""
    tree = ast.parse((PACKAGE / "ros" / "node.py").read_text(encoding="utf-8"))
    node_class = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "MLLMSegNode")
    names = {n.name for n in node_class.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    for n in ast.walk(node_class):
        if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store) and isinstance(n.value, ast.Name) \
                and n.value.id == "self":
            names.add(n.attr)
    return names - {"__init__"}


def _node_reads(path: Path, state: set[str]) -> list[str]:
    """Where ``path`` reads the node's state: ``node.X`` or ``<something>.node.X`` for X in ``state``,
    ``getattr(node, "X")``, or names the node's class."""
    def is_node(expression: ast.expr) -> bool:
        return (isinstance(expression, ast.Name) and expression.id == "node") or \
            (isinstance(expression, ast.Attribute) and expression.attr == "node")

    text = path.read_text(encoding="utf-8")
    found = [f"line {n}: MLLMSegNode" for n, line in enumerate(text.splitlines(), 1) if "MLLMSegNode" in line]
    for n in ast.walk(ast.parse(text)):
        if isinstance(n, ast.Attribute) and n.attr in state and is_node(n.value):
            found.append(f"line {n.lineno}: node.{n.attr}")
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "getattr" and len(n.args) > 1 \
                and is_node(n.args[0]) and isinstance(n.args[1], ast.Constant) and n.args[1].value in state:
            found.append(f"line {n.lineno}: getattr(node, {n.args[1].value!r})")
    return found


def test_ros_helpers_get_what_they_use_not_the_node():
    """CommandHandler, SegmentService, CameraStream, TrackingWorker and the rest are handed the target, the engine
    handle, the streams, callables, and an rclpy node to make their endpoints: never MLLMSegNode's state."""
    state = _node_state()
    reads = {str(p.relative_to(PACKAGE)): found for p in sorted((PACKAGE / "ros").glob("*.py"))
             if (found := _node_reads(p, state))}
    unexplained = {name: found for name, found in reads.items() if name not in READS_THE_NODE}
    assert not unexplained, f"helpers reading the node's state (hand them what they use): {unexplained}"
    stale = sorted(set(READS_THE_NODE) - set(reads))
    assert not stale, f"no longer reading the node: take them out of READS_THE_NODE: {stale}"


def test_the_node_state_checker_sees_the_node_and_its_readers(tmp_path):
    """The check above sees the node's state and a helper that reaches into it (else it could pass on anything)."""
    assert {"target", "problems", "settings", "engine", "segmenter", "wake_worker", "is_active"} <= _node_state()
    planted = tmp_path / "planted.py"  # how ResultPublisher read the node before it was handed what it uses
    planted.write_text('settings = self.node.settings\ngate = getattr(node, "output_gate", None)\n', encoding="utf-8")
    found = _node_reads(planted, _node_state())
    assert any("node.settings" in where for where in found) and any("'output_gate'" in where for where in found)


def test_a_cameras_frame_pairing_needs_no_ros():
    """ros/frame_pairing.py (and the buffers it uses) are tested with plain values and a fake clock, in seconds per
    mutant (scripts/mutation.py's camera_stream target): they must not come to need rclpy or messages."""
    for name in ("frame_pairing.py", "buffers.py"):
        imported = {target for target, _ in _imports(PACKAGE / "ros" / name)}
        assert not imported & (ROS_MODULES | INTERFACES), f"ros/{name} imports {sorted(imported & ROS_MODULES)}"
    assert "ros" in {target for target, _ in _imports(PACKAGE / "ros" / "frame_pairing.py")}  # the checker sees .buffers
