"""Helpers for tests with real rclpy nodes, on top of the package's replay driver (mllmseg_ros.tools.node_driver: a
tiny checkpoint, a driver node, test messages and waiting on conditions)."""
from __future__ import annotations

import time

from mllmseg_ros.tools.node_driver import (  # noqa: F401  (the replay driver, shared with the benchmarks)
    K, WAIT_S, Driver, camera_info_msg, connected, depth_msg, is_model_answer, json_token, rgb_msg, stamp_ns_of,
    tiny_checkpoint, wait_for,
)


def slow_down(node, delay_s: float) -> list[float]:
    """Make every inference of an in-process node take ``delay_s`` longer; returns the list of start times."""
    segment_batch = node.segmenter.segment_batch
    starts: list[float] = []

    def slow(*args, **kwargs):
        starts.append(time.monotonic())
        time.sleep(delay_s)
        return segment_batch(*args, **kwargs)

    node.segmenter.segment_batch = slow
    return starts


def results_flow(driver: Driver, since: int = 0, stamp_ns: int = 1) -> bool:
    """Frames sent until more than ``since`` results have come."""
    return wait_for(lambda: (driver.image.publish(rgb_msg(stamp_ns=stamp_ns)), len(driver.arrays) > since)[1], interval=0.2)


def seconds_to_results(driver: Driver, since: int = 0, stamp_ns: int = 1) -> float:
    """``results_flow`` (asserted), timed: how long this node takes to answer here and now."""
    started = time.monotonic()
    assert results_flow(driver, since, stamp_ns)
    return time.monotonic() - started


def quiet_window(seconds_to_answer: float) -> float:
    """How long a "nothing more was published" check waits: three times what the node just took to answer in the same
    test (at least 1 s), so a node that is merely slow (a loaded machine) cannot pass it."""
    return max(1.0, 3.0 * seconds_to_answer)


def diagnostics_listener(ros, stamps_ns: list | None = None):
    """A node recording /diagnostics statuses; returns the list it appends to (and the arrays' stamps to
    ``stamps_ns`` when given)."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    statuses: list = []

    def on_array(msg) -> None:
        if stamps_ns is not None:
            stamps_ns.append(stamp_ns_of(msg))
        statuses.extend(msg.status)

    node = ros.add(Node(f"test_diagnostics_{time.monotonic_ns()}"))
    node.create_subscription(DiagnosticArray, "/diagnostics", on_array, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    return statuses


def values_of(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def commanded(ros, make_node, checkpoint, command: str = "the red cup", **params):
    """An active node with ``params``, a connected driver, and ``command`` accepted: (node, driver)."""
    node = make_node(checkpoint, **params)
    driver = ros.driver()
    assert connected(node, driver)
    driver.send_command(command)
    assert wait_for(lambda: node.target.current is not None)
    return node, driver


def call_service(node, service_type, name: str, request, timeout: float = WAIT_S):
    """``request`` to the service ``name`` from ``node`` (spun by the test's executor): the response, or None."""
    client = node.create_client(service_type, name)
    try:
        if not client.wait_for_service(timeout_sec=timeout):
            return None
        future = client.call_async(request)
        return future.result() if wait_for(future.done, timeout) else None
    finally:
        node.destroy_client(client)


def get_parameters(node, target: str, names: list[str]) -> dict:
    """The values of ``names`` on the node ``target`` (fully qualified), read through its parameter service."""
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python

    response = call_service(node, GetParameters, f"{target}/get_parameters", GetParameters.Request(names=names))
    assert response is not None, f"no answer from {target}/get_parameters"
    return {name: parameter_value_to_python(value) for name, value in zip(names, response.values)}


def change_state(node, target: str, transition: int) -> bool:
    """A lifecycle transition of ``target`` (lifecycle_msgs/Transition id) through its change_state service."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    response = call_service(node, ChangeState, f"{target}/change_state",
                            ChangeState.Request(transition=Transition(id=transition)))
    return bool(response and response.success)
