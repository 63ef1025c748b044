"""The node with an InternVL3.5-shaped checkpoint (Qwen3 LLM): results as with the InternVL2.5 ones, in float32,
bfloat16 and int8."""
from __future__ import annotations

import pytest
from safetensors.torch import load_file, save_file

from ros_harness import connected, json_token, rgb_msg, wait_for


@pytest.fixture(scope="module")
def qwen3_checkpoint(tmp_path_factory):
    """A small random InternVL3.5-style model whose [REJ] row of the output head is zero, so every answer is [SEG]."""
    from mllmseg_ros.training.checkpoint_builder import random_checkpoint

    folder = random_checkpoint(tmp_path_factory.mktemp("tiny_qwen3"), ["the red cup", "the blue bowl"], llm="qwen3",
                               image_size=56, vision_width=32, llm_width=32)
    state = load_file(str(folder / "model.safetensors"))
    state["language_model.lm_head.weight"][json_token(folder, "[REJ]")] = 0.0
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


@pytest.mark.parametrize("params", [{}, {"dtype": "bfloat16"}, {"quantization": "int8"}], ids=["float32", "bf16", "int8"])
def test_qwen3_checkpoint_gives_results(ros, make_node, qwen3_checkpoint, params):
    node = make_node(qwen3_checkpoint, threshold=0.0, **params)
    assert node.segmenter.config.llm_family == "qwen3"
    driver = ros.driver()
    assert connected(node, driver)
    driver.send_command("Pick up the red cup; the blue bowl")
    assert wait_for(lambda: node.target.current is not None)
    driver.image.publish(rgb_msg(stamp_ns=42, frame_id="cam_opt"))
    assert wait_for(lambda: driver.arrays)
    array = driver.arrays[0]
    assert array.header.frame_id == "cam_opt"
    assert [s.expression for s in array.segmentations] == ["the red cup", "the blue bowl"]
    assert all(s.found and s.area == 64 * 48 for s in array.segmentations)  # threshold 0, decisions pinned to [SEG]
