"""ROS conventions, with the node in its own process, started in a namespace with values it took before this issue
too (one process, one test per finding, so each failed there on its own): qos_overrides for publishers and
subscriptions, compressed images on the remapped image topic + /compressed, the no-image watchdog and /diagnostics
with use_sim_time but no /clock, and a params file keyed by the node's name, which does not apply in a namespace."""
from __future__ import annotations

import pytest
from rclpy.qos import ReliabilityPolicy

from mllmseg_ros.tools.node_process import params_yaml, run_node
from ros_harness import diagnostics_listener, wait_for

QOS_OVERRIDES = """\
    qos_overrides:
      /robot1/mllmseg_node/segmentations:
        publisher:
          reliability: best_effort
      /robot1/command:
        subscription:
          reliability: best_effort
      /camera/color/image_raw/compressed:
        subscription:
          reliability: reliable
"""


@pytest.fixture(scope="module")
def node_process(seg_checkpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp("conventions")
    params = params_yaml(folder / "params.yaml", {"model_path": str(seg_checkpoint), "autostart": "true",
                                                  "image_compressed": "true", "no_image_warn_s": "1.0",
                                                  "diagnostics_period_s": "0.5", "use_sim_time": "true"},
                         extra=QOS_OVERRIDES)
    keyed = params_yaml(folder / "keyed.yaml", {"threshold": "0.3"}, key="mllmseg_node")
    with run_node(["--params-file", str(params), "--params-file", str(keyed), "-r", "__ns:=/robot1",
                   "-r", "image:=/camera/color/image_raw"]) as process:
        assert process.wait_for_output("model loaded"), process.stop()
        yield process
    assert "Traceback" not in process.output and "[ERROR]" not in process.output, process.output


@pytest.fixture()
def client(ros, node_process):
    return ros.driver().node


def test_qos_overrides_reach_publishers_and_subscriptions(client):
    assert wait_for(lambda: client.get_publishers_info_by_topic("/robot1/mllmseg_node/segmentations"))
    (publisher,) = client.get_publishers_info_by_topic("/robot1/mllmseg_node/segmentations")
    assert publisher.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
    assert wait_for(lambda: client.get_subscriptions_info_by_topic("/robot1/command"))
    (subscription,) = client.get_subscriptions_info_by_topic("/robot1/command")
    assert subscription.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT


def test_compressed_images_come_from_the_remapped_image_topic(client):
    """image_transport's naming: <remapped image topic>/compressed, here with its own QoS override."""
    image = "/camera/color/image_raw/compressed"
    assert wait_for(lambda: client.get_subscriptions_info_by_topic(image), timeout=10), client.get_topic_names_and_types()
    assert client.get_subscriptions_info_by_topic(image)[0].qos_profile.reliability == ReliabilityPolicy.RELIABLE
    assert not client.get_subscriptions_info_by_topic("/robot1/image/compressed")


def test_the_watchdog_and_diagnostics_run_without_clock(ros, node_process):
    """use_sim_time and nobody publishes /clock: ROS time stands still, the steady clock does not."""
    statuses = diagnostics_listener(ros)
    assert node_process.wait_for_output("no image for", timeout=20), node_process.output
    assert wait_for(lambda: statuses, timeout=10)


def test_a_params_file_keyed_by_the_node_name_is_not_silently_unused(ros, node_process):
    statuses = diagnostics_listener(ros)
    assert "keyed.yaml: no section applies to this node /robot1/mllmseg_node" in node_process.output
    assert wait_for(lambda: any(s.level == s.WARN and "no section applies" in s.message for s in statuses), timeout=10)
