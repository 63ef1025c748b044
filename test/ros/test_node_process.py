"""The node as its own process, started through its entry point with --params-file, as `ros2 run` would."""
from __future__ import annotations

import yaml

from mllmseg_ros.tools.node_process import REPO, params_file, run_node
from ros_harness import rgb_msg, wait_for


def test_entry_point_with_params_file(ros, seg_checkpoint, tmp_path):
    params = params_file(tmp_path, model_path=str(seg_checkpoint), threshold=0.0, no_image_warn_s=0.0)
    with run_node(["--params-file", str(params), "-r", "image:=/cam/image_raw"]) as process:
        driver = ros.driver(namespace="/cam")
        driver.image = driver.node.create_publisher(type(rgb_msg()), "/cam/image_raw", 10)
        assert wait_for(lambda: driver.image.get_subscription_count() > 0 and driver.command.get_subscription_count() > 0)
        # the node re-matches QoS once it sees our RELIABLE publisher; keep sending until results come back
        driver.send_command("the red cup")
        assert wait_for(lambda: (driver.image.publish(rgb_msg(stamp_ns=99, frame_id="cam")), bool(driver.arrays))[1], interval=0.2)
        array = driver.arrays[0]
        assert array.header.frame_id == "cam" and array.segmentations[0].expression == "the red cup"
        assert array.segmentations[0].area == 64 * 48  # threshold 0.0 from the params file
    assert "model loaded" in process.output, process.output
    assert "Traceback" not in process.output, process.output


def test_the_shipped_params_file_names_every_parameter():
    from mllmseg_ros.ros.params import SPECS

    params = yaml.safe_load((REPO / "config" / "mllmseg.yaml").read_text())["/**"]["ros__parameters"]
    assert set(params) == set(SPECS), set(params) ^ set(SPECS)


def test_a_demo_model_is_named_as_such_in_the_nodes_log(seg_checkpoint, tmp_path):
    """A checkpoint whose model card says synthetic scenes only: the node logs that one line when it loads it."""
    import shutil

    from mllmseg_ros.model.model_card import SYNTHETIC_SCENES, write_model_card

    model = shutil.copytree(seg_checkpoint, tmp_path / "demo_like")
    write_model_card(model, SYNTHETIC_SCENES)
    params = params_file(tmp_path, model_path=str(model), no_image_warn_s=0.0)
    with run_node(["--params-file", str(params)]) as process:
        assert process.wait_for_output("model loaded"), process.output
    lines = [line for line in process.output.splitlines() if "trained on synthetic tabletop scenes only" in line]
    assert len(lines) == 1 and "WARN" in lines[0], process.output
