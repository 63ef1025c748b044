#!/usr/bin/env bash
# Build the package's ROS interfaces (msg/, srv/) with plain cmake and install them into the project venv, so
# `from mllmseg_ros.msg import ...` works there with nothing to source (see shared/ros-notes.md, rosidl section).
# The hand-written modules are not installed: pip -e serves them (MLLMSEG_ROS_PYTHON_FROM_SOURCE, CMakeLists.txt).
# Idempotent: a stamp makes a repeated run with unchanged inputs return at once. Called by scripts/setup.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
venv=$root/.venv
py=$venv/bin/python
build=build/interfaces
stamp=$venv/.interfaces-stamp

[[ -f $venv/.setup-stamp ]] || { echo "build_interfaces: no $venv yet; run scripts/setup.sh" >&2; exit 1; }
# Also rebuilt after setup.sh re-ran pip (its stamp: maybe newer ROS wheels), and when the checkout moves (the
# installed __init__.py names the source directory).
want="$(cat CMakeLists.txt package.xml msg/*.msg srv/*.srv scripts/build_interfaces.sh "$venv/.setup-stamp" |
        sha256sum | cut -d' ' -f1) ros=${ROS_DISTRO:-pip} root=$root"
if [[ -f $stamp && "$(<"$stamp")" == "$want" ]]; then
    exit 0
fi

if [[ -n ${ROS_DISTRO:-} ]]; then
    # A sourced ROS provides the generators and its own AMENT_PREFIX_PATH/CMAKE_PREFIX_PATH: extend them.
    export AMENT_PREFIX_PATH=$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
    prefix_path=$venv${CMAKE_PREFIX_PATH:+;${CMAKE_PREFIX_PATH//:/;}}
else
    # pip ROS: everything is in the venv (fix 1 of the notes: else "No 'rosidl_typesupport_c' found").
    export AMENT_PREFIX_PATH=$venv
    prefix_path=$venv
fi

echo "setup: building the ROS interfaces into $venv (about 30 s)" >&2
start=$SECONDS
# rosidl's generators run with this interpreter; the venv's bin first also keeps cmake's FindPython on the venv.
export PATH=$venv/bin:$PATH VIRTUAL_ENV=$venv
# A changed CMakeLists/option must not be masked by a cache from an earlier configuration.
rm -rf "$build"
generator=(); command -v ninja >/dev/null && generator=(-G Ninja)
log=$build.log
mkdir -p "$build"
if ! { cmake -S . -B "$build" "${generator[@]}" \
            -DCMAKE_BUILD_TYPE=Release \
            -DCMAKE_INSTALL_PREFIX="$venv" \
            -DCMAKE_PREFIX_PATH="$prefix_path" \
            -DPython3_EXECUTABLE="$py" \
            -DMLLMSEG_ROS_PYTHON_FROM_SOURCE=ON \
            -DBUILD_TESTING=OFF &&
       cmake --build "$build" -j "$(nproc)" &&
       cmake --install "$build"; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "setup: building the ROS interfaces failed; full log in $log" >&2
    exit 1
fi
echo "$want" > "$stamp"
echo "setup: ROS interfaces built in $((SECONDS - start)) s" >&2
if [[ -n ${ROS_DISTRO:-} ]]; then
    # No wheel bootstrapper here to put the venv's lib/ on LD_LIBRARY_PATH, where rosidl looks up typesupports.
    echo "setup: with a sourced ROS, also run: . $venv/share/mllmseg_ros/local_setup.sh" >&2
fi
