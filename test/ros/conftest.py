"""Fixtures for tests that run real ROS 2 nodes in this process."""
from __future__ import annotations

import gc
import threading

import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed; scripts/setup.sh installs it")

from ros_harness import Driver, tiny_checkpoint  # noqa: E402


@pytest.fixture(scope="session")
def seg_checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny_seg"), decision="SEG")


@pytest.fixture(scope="session")
def rej_checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny_rej"), decision="REJ")


@pytest.fixture()
def ros():
    """rclpy initialised for one test, an executor spinning in a thread; everything torn down afterwards."""
    from rclpy.executors import SingleThreadedExecutor

    rclpy.init()
    executor = SingleThreadedExecutor()  # as the node's main() uses (see there why)
    thread = threading.Thread(target=executor.spin, daemon=True)
    nodes = []

    class Ros:
        def add(self, node):
            nodes.append(node)
            executor.add_node(node)
            return node

        def driver(self, **kwargs) -> Driver:
            driver = Driver(**kwargs)
            self.add(driver.node)
            return driver

    thread.start()
    try:
        yield Ros()
    finally:
        for node in nodes:
            if hasattr(node, "shutdown_worker"):
                node.shutdown_worker()
        for node in nodes:
            executor.remove_node(node)
        executor.shutdown(timeout_sec=5)
        thread.join(timeout=5)
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
        # The DDS participant lives until the context's handle is freed, and reference cycles between nodes and
        # their callbacks keep it for an unknown time: without this a long run held 30+ participants in this
        # process, past the 32 that LOCALHOST discovery probes, and a node started in its own process then found
        # no one (test_node_shutdown.py failed in CI).
        gc.collect()


@pytest.fixture()
def make_node(ros):
    """Start an MLLMSegNode with parameter overrides; ``activate=False`` leaves it unconfigured."""
    from rclpy.parameter import Parameter

    from mllmseg_ros.ros.node import MLLMSegNode

    def make(checkpoint, activate: bool = True, **params):
        overrides = [Parameter("model_path", value=str(checkpoint)), Parameter("no_image_warn_s", value=0.0)]
        overrides += [Parameter(name, value=value) for name, value in params.items()]
        node = ros.add(MLLMSegNode(parameter_overrides=overrides))
        if activate:
            node.trigger_configure()
            node.trigger_activate()
        return node

    return make
