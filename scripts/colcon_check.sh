#!/usr/bin/env bash
# `colcon build` and `colcon test` of this package in a scratch workspace, as on a robot, against the project venv's
# pip ROS (or a sourced ROS). Fails when the build fails, a test fails, or no test ran.
#   scripts/colcon_check.sh                      # colcon test runs the whole suite (test/)
#   scripts/colcon_check.sh test/test_package.py test/ros/test_interfaces.py   # only these (CI: .ci/run)
# colcon itself and ament_cmake_pytest come from pip into build/colcon-tools, a venv of their own: they are build
# tools, not something the package imports. The workspace is a temp folder, removed at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
venv=$root/.venv
tools=$root/build/colcon-tools
start=$SECONDS

scripts/setup.sh

tool_pkgs=(colcon-core==0.21.3 colcon-ros==0.5.0 colcon-cmake==0.2.30 colcon-test-result==0.3.8
           colcon-package-selection==0.2.10 ros-ament-cmake-pytest==2.7.3)
if [[ ! -f $tools/.stamp || "$(<"$tools/.stamp")" != "${tool_pkgs[*]}" ]]; then
    echo "colcon_check: installing colcon into $tools" >&2
    rm -rf "$tools"
    python3 -m venv "$tools"
    "$tools/bin/python" -m pip --disable-pip-version-check -q install "${tool_pkgs[@]}"
    echo "${tool_pkgs[*]}" > "$tools/.stamp"
fi

ws=$(mktemp -d "${TMPDIR:-/tmp}/mllmseg_colcon_ws.XXXXXX")
trap 'rm -rf "$ws"' EXIT
mkdir -p "$ws/src"
ln -s "$root" "$ws/src/mllmseg_ros"  # the tests resolve their own path, so ../shared is found beside the checkout

# As scripts/build_interfaces.sh: the venv's interpreter for rosidl and FindPython, its prefix for the ROS wheels;
# ament_cmake_pytest from the tools venv (with a sourced ROS, the distro's prefixes come after).
export PATH=$venv/bin:$PATH VIRTUAL_ENV=$venv
export AMENT_PREFIX_PATH=$venv:$tools${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
prefix_path="$venv;$tools${CMAKE_PREFIX_PATH:+;${CMAKE_PREFIX_PATH//:/;}}"
pytest_paths=${*:-test}
colcon=("$tools/bin/colcon" --log-base "$ws/log")
cd "$ws"
"${colcon[@]}" build --packages-select mllmseg_ros --event-handlers console_direct- --cmake-args \
    -DPython3_EXECUTABLE="$venv/bin/python" -DCMAKE_PREFIX_PATH="$prefix_path" \
    "-DMLLMSEG_ROS_PYTEST_PATHS=${pytest_paths// /;}" -DBUILD_TESTING=ON
echo "colcon_check: built in $((SECONDS - start)) s" >&2
[[ -x install/mllmseg_ros/lib/mllmseg_ros/mllmseg_node && -f install/mllmseg_ros/share/mllmseg_ros/launch/mllmseg.launch.py ]] ||
    { echo "colcon_check: the install lacks lib/mllmseg_ros/mllmseg_node or the launch file" >&2; exit 1; }

rc=0
"${colcon[@]}" test --packages-select mllmseg_ros --return-code-on-test-failure --event-handlers console_direct+ || rc=$?
summary=$("${colcon[@]}" test-result --test-result-base build/mllmseg_ros --all --verbose) || rc=$((rc ? rc : 1))
echo "$summary"
# pytest's own result files (one per registered path); the summary also counts ctest's entries.
tests_run=$(sed -nE 's/^.*\/pytest_[A-Za-z0-9_]+\.xunit\.xml: ([0-9]+) tests?,.*/\1/p' <<<"$summary" | awk '{n += $1} END {print n + 0}')
if [[ ${tests_run:-0} -eq 0 ]]; then
    echo "colcon_check: colcon test ran no tests; counting that as a failure" >&2
    rc=1
fi
echo "colcon_check: ${tests_run:-0} tests, exit $rc, $((SECONDS - start)) s in all" >&2
exit "$rc"
