"""mllmseg_ros: a ROS 2 perception node running the MLLMSeg referring-segmentation model.

Installs with pip (`pip install -e .[test]`, see scripts/setup.sh) and builds as an ament_python package with colcon.
"""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "mllmseg_ros"
# On a robot rosdep installs these as system packages (package.xml); a pip install of this package gets them here.
ROSDEP_PROVIDED = ["numpy", "pillow", "opencv-python-headless", "protobuf", "pyyaml", "tqdm"]
# The rest: the same list a robot installs with `pip install -r requirements.txt`.
PIP_REQUIREMENTS = [
    line.split("#", 1)[0].strip()
    for line in (Path(__file__).resolve().parent / "requirements.txt").read_text().splitlines()
    if line.split("#", 1)[0].strip()
]

setup(
    name=PACKAGE,
    version="0.1.0",
    description="ROS 2 node for MLLMSeg referring segmentation",
    license="Apache-2.0",
    packages=find_packages(include=[f"{PACKAGE}*"]),
    package_data={f"{PACKAGE}.engine": ["command_grammar.tsv"]},  # the spoken-command phrases (engine/commands.py)
    python_requires=">=3.10",
    # scripts/setup.sh pins torch to the CPU wheel so that pip does not pull a CUDA build
    install_requires=ROSDEP_PROVIDED + PIP_REQUIREMENTS,
    # bitsandbytes: optional 8/4-bit weights (quantization="bnb-int8"/"bnb-nf4"); the tests check its accuracy.
    # catkin_pkg: test/test_package.py validates package.xml with it.
    # scikit-image: its bundled public-domain photos make the real-photo tracking sequences (tests and benchmarks
    # only; nothing imports it at run time).
    # pytest-xdist: scripts/test.sh runs the suite in two processes (most ROS tests wait on the wire, not the CPU).
    extras_require={"test": ["pytest", "pytest-timeout", "pytest-xdist", "bitsandbytes", "catkin_pkg", "scikit-image"],
                    "quantization": ["bitsandbytes"]},
    # ament index and share/ files, so `ros2 run`/`ros2 launch` find the package after a colcon build.
    # glob() so that a not-yet-existing launch/ or config/ folder is simply empty.
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml", "requirements.txt"]),
        (f"share/{PACKAGE}/launch", glob("launch/*")),
        (f"share/{PACKAGE}/config", glob("config/*")),
    ],
    zip_safe=False,
    entry_points={
        "console_scripts": [
            "mllmseg-ros=mllmseg_ros.tools.cli:main",
            "mllmseg_node=mllmseg_ros.ros.node:main",
        ],
    },
)
