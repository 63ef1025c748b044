"""package.xml declares what the code imports, so `rosdep install` on a robot installs it (and pip the rest)."""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import catkin_pkg.package
import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_SOURCES = [*sorted((ROOT / "mllmseg_ros").rglob("*.py")), *sorted((ROOT / "launch").glob("*.py"))]

# Python module -> its rosdep key (checked in ros/rosdistro rosdep/python.yaml).
ROSDEP_KEYS = {
    "torch": "python3-torch",
    "numpy": "python3-numpy",
    "cv2": "python3-opencv",
    "PIL": "python3-pil",
    "yaml": "python3-yaml",
    "tqdm": "python3-tqdm",
    "google": "python3-protobuf",
}
# Modules with no system-package rosdep key: docs/workspace.md's workspace section installs them with pip. Optional ones
# (bitsandbytes, peft) are imported only when their feature is used.
PIP_ONLY = {"transformers", "safetensors", "tokenizers", "sentencepiece", "rosbags", "pycocotools"}
PIP_OPTIONAL = {"bitsandbytes", "peft"}
# Imported only where tests and benchmarks make their data (data/photo_targets.py: the real-photo tracking sequences),
# never by the node or the CLI (test/engine/test_tracking_room.py): a test_depend, in setup.py's test extra.
TEST_ONLY = {"skimage": "python3-skimage"}
# ROS packages imported by Python name (the package name itself is the dependency).
ROS_PYTHON_PACKAGES = {"rclpy", "launch", "launch_ros", "ament_index_python"}


def _imported_top_level_modules() -> set[str]:
    names = set()
    for path in RUNTIME_SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__", "mllmseg_ros"}


@pytest.fixture(scope="module")
def package():
    return catkin_pkg.package.parse_package(str(ROOT / "package.xml"))


def _declared(package) -> set[str]:
    groups = (package.build_depends, package.buildtool_depends, package.exec_depends, package.test_depends)
    return {dependency.name for group in groups for dependency in group}


def test_package_xml_is_valid_format_3_and_matches_the_build(package):
    package.validate()  # raises InvalidPackage on a schema or content problem
    assert package.package_format == 3
    project = re.search(r"project\((\w+)", (ROOT / "CMakeLists.txt").read_text()).group(1)
    assert package.name == project == "mllmseg_ros"
    assert f'version="{package.version}"' in (ROOT / "setup.py").read_text()
    assert package.get_build_type() == "ament_cmake"


def test_build_and_test_tools_are_declared(package):
    assert {"ament_cmake", "ament_cmake_python", "rosidl_default_generators"} <= {d.name for d in package.buildtool_depends}
    assert {"ament_cmake_pytest", "python3-pytest"} <= {d.name for d in package.test_depends}


def test_every_imported_module_is_declared_or_installed_by_pip(package):
    imported = _imported_top_level_modules()
    unknown = imported - ROSDEP_KEYS.keys() - PIP_ONLY - PIP_OPTIONAL - ROS_PYTHON_PACKAGES - TEST_ONLY.keys()
    assert set(TEST_ONLY.values()) <= {d.name for d in package.test_depends}
    ros_messages = {name for name in unknown if name.endswith(("_msgs", "_interfaces"))}
    assert unknown == ros_messages, f"imported but neither a ROS package nor listed here: {sorted(unknown - ros_messages)}"
    declared = _declared(package)
    needed = {ROSDEP_KEYS[name] for name in imported & ROSDEP_KEYS.keys()} | (imported & ROS_PYTHON_PACKAGES) | ros_messages
    assert needed - declared == set()


# setup.py's distributions that rosdep provides on a robot -> their Python module
ROSDEP_DISTRIBUTIONS = {"numpy": "numpy", "pillow": "PIL", "opencv-python-headless": "cv2", "protobuf": "google",
                        "pyyaml": "yaml", "tqdm": "tqdm"}


def _requirement_names(lines) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", line.split("#", 1)[0].strip())[0].lower()
            for line in lines if line.split("#", 1)[0].strip()}


def test_pip_only_modules_are_named_in_package_xml_and_the_workspace_page():
    comment = (ROOT / "package.xml").read_text()
    readme = (ROOT / "docs" / "workspace.md").read_text()
    section = readme.split("### In a ROS 2 workspace", 1)[1].split("\n### ", 1)[0]
    pip_lines = " ".join(line for line in section.splitlines() if "pip install" in line)
    for name in PIP_ONLY:
        assert name in comment, name
    assert re.search(r"pip install -r \S*requirements\.txt", pip_lines)  # the one step after rosdep
    for step in ("rosdep install", "colcon build", "colcon test"):
        assert step in section


def test_rosdep_and_one_pip_step_install_everything(package):
    """rosdep installs what has a system package, `pip install -r requirements.txt` the rest, and nothing twice (a
    pip numpy or OpenCV would shadow the distribution's, which ROS's own modules were built against)."""
    requirements = _requirement_names((ROOT / "requirements.txt").read_text().splitlines())
    assert requirements - {"torch"} == PIP_ONLY
    # torch comes from rosdep except where the distribution's is older than 2.1 (Ubuntu 22.04, Humble): pip then
    (torch,) = [d for d in package.exec_depends if d.name == "python3-torch"]
    assert torch.condition and "humble" in torch.condition
    assert not torch.evaluate_condition({"ROS_DISTRO": "humble"}) and torch.evaluate_condition({"ROS_DISTRO": "jazzy"})
    # a pip install of the package (setup.py) gets the same: the rosdep-provided list plus requirements.txt
    tree = ast.parse((ROOT / "setup.py").read_text())
    provided = next(ast.literal_eval(node.value) for node in ast.walk(tree) if isinstance(node, ast.Assign)
                    and getattr(node.targets[0], "id", "") == "ROSDEP_PROVIDED")
    assert set(provided) == set(ROSDEP_DISTRIBUTIONS)
    declared = _declared(package)
    assert {ROSDEP_KEYS[ROSDEP_DISTRIBUTIONS[name]] for name in provided} <= declared
