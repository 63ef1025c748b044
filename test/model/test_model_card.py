"""A model trained on synthetic scenes only says so where a user meets it: its folder's model_card.json, read when the
engine loads it, which announces one line (the CLI prints it, the node logs it: test/tools, test/ros)."""
from __future__ import annotations

import pytest

from mllmseg_ros.engine import Segmenter
from mllmseg_ros.model import CheckpointError
from mllmseg_ros.model.model_card import (RELEASED_CHECKPOINTS_DOC, SYNTHETIC_SCENES, ModelCard, read_model_card,
                                          write_model_card)
from mllmseg_ros.tools.demo import DEMO_MODEL
from mllmseg_ros.training.checkpoint_builder import random_checkpoint


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    random_checkpoint(folder, ["the red cup"], image_size=56, vision_width=32, llm_width=32)
    return folder


def test_the_shipped_demo_model_carries_the_synthetic_only_card():
    card = read_model_card(DEMO_MODEL)
    assert card == SYNTHETIC_SCENES
    notice = card.load_notice(DEMO_MODEL)
    assert "mllmseg_demo: trained on synthetic tabletop scenes only" in notice
    assert "released MLLMSeg checkpoint" in notice and RELEASED_CHECKPOINTS_DOC in notice
    assert "\n" not in notice


def test_loading_announces_the_card_once(small_checkpoint):
    lines: list[str] = []
    Segmenter.from_pretrained(small_checkpoint, announce=lines.append)
    assert lines == []  # no card: a released checkpoint, nothing to say
    write_model_card(small_checkpoint, SYNTHETIC_SCENES)
    try:
        Segmenter.from_pretrained(small_checkpoint, announce=lines.append)
    finally:
        (small_checkpoint / "model_card.json").unlink()
    assert lines == [SYNTHETIC_SCENES.load_notice(small_checkpoint)]


def test_a_card_that_claims_real_images_says_nothing(tmp_path):
    write_model_card(tmp_path, ModelCard(trained_on="RefCOCO", synthetic_only=False))
    assert read_model_card(tmp_path).load_notice(tmp_path) is None


def test_a_broken_card_is_a_checkpoint_error(tmp_path):
    (tmp_path / "model_card.json").write_text('{"trained_on": "scenes"}')
    with pytest.raises(CheckpointError, match="model_card.json: not a valid model card"):
        read_model_card(tmp_path)
