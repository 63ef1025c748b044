"""RefCOCO-style evaluation on a tiny REFER dataset built here, with hand-computed metrics."""
from __future__ import annotations

import json
import pickle
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
from pycocotools import mask as coco_mask

from mllmseg_ros.tools.cli import main
from mllmseg_ros.data.refer import IMAGE_DIR, load_split
from mllmseg_ros.tools.refer_eval import Metrics, evaluate

H, W = 20, 30


def square(x0, y0, x1, y1) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


# Two images. Image 1: a polygon annotation (10 x 10 square) and an RLE annotation (5 x 4 box); image 2: one RLE.
TARGETS = {101: square(0, 0, 10, 10), 102: square(20, 5, 25, 9), 201: square(5, 5, 15, 15)}


def build_refer(root, dataset="refcoco", grefs=False):
    images = [{"id": 1, "file_name": "COCO_train2014_000000000001.jpg", "height": H, "width": W},
              {"id": 2, "file_name": "COCO_train2014_000000000002.jpg", "height": H, "width": W}]
    annotations = [
        {"id": 101, "image_id": 1, "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]], "category_id": 1, "iscrowd": 0},
        {"id": 102, "image_id": 1, "segmentation": _rle(TARGETS[102]), "category_id": 1, "iscrowd": 0},
        {"id": 201, "image_id": 2, "segmentation": _rle(TARGETS[201]), "category_id": 1, "iscrowd": 0},
    ]
    refs = [
        {"ref_id": 1, "ann_id": 101, "image_id": 1, "split": "val", "sentences": [{"sent": "The left box."}, {"sent": "big box"}]},
        {"ref_id": 2, "ann_id": 102, "image_id": 1, "split": "val", "sentences": [{"sent": "small box"}]},
        {"ref_id": 3, "ann_id": 201, "image_id": 2, "split": "val", "sentences": [{"sent": "the square"}]},
        {"ref_id": 4, "ann_id": 201, "image_id": 2, "split": "testA", "sentences": [{"sent": "not in val"}]},
    ]
    folder = root / dataset
    folder.mkdir(parents=True)
    (folder / "instances.json").write_text(json.dumps({"images": images, "annotations": annotations, "categories": []}))
    if grefs:
        refs.append({"ref_id": 5, "ann_id": [-1], "image_id": 2, "split": "val", "sentences": [{"sent": "a unicorn"}]})
        (folder / "grefs(unc).json").write_text(json.dumps(refs))
    else:
        with open(folder / "refs(unc).p", "wb") as handle:
            pickle.dump(refs, handle, protocol=2)
    (root / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    for image in images:
        cv2.imwrite(str(root / IMAGE_DIR / image["file_name"]), np.full((H, W, 3), 128, np.uint8))
    return root


def _rle(mask: np.ndarray) -> dict:
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


@dataclass
class Answer:
    probability: np.ndarray
    decision: str


class StubSource:
    """Known answers: every expression gets the 10 x 10 square at the top left; "a unicorn" is rejected."""

    def __init__(self):
        self.calls = []

    def segment(self, image, expressions):
        self.calls.append(list(expressions))
        return [Answer(square(0, 0, 10, 10).astype(np.float32), "REJ" if e == "a unicorn" else "SEG") for e in expressions]


def test_split_loading_groups_expressions_by_image(tmp_path):
    samples, annotations = load_split(build_refer(tmp_path), "refcoco", "val")
    assert [s.expressions for s in samples] == [["the left box", "big box", "small box"], ["the square"]]
    assert [s.ann_ids for s in samples] == [[[101], [101], [102]], [[201]]]


def test_metrics_against_hand_computed_values(tmp_path):
    samples, annotations = load_split(build_refer(tmp_path), "refcoco", "val")
    source = StubSource()
    summary = evaluate(source, samples, annotations, show_progress=False).summary()
    assert source.calls == [["the left box", "big box", "small box"], ["the square"]]  # one conversation per image
    # exprs 1-2: perfect (I=U=100); expr 3: I=0, U=100+20; expr 4: I=25 (5x5 overlap), U=100+100-25
    assert summary["cIoU"] == pytest.approx((100 + 100 + 0 + 25) / (100 + 100 + 120 + 175))
    assert summary["gIoU"] == pytest.approx((1 + 1 + 0 + 25 / 175) / 4)
    assert summary["gIoU_image_mean"] == pytest.approx(((1 + 1 + 0) / 3 + 25 / 175) / 2)
    assert summary["seg_rej_accuracy"] == 1.0 and summary["no_target_accuracy"] is None


def test_per_expression_mode_asks_one_at_a_time(tmp_path):
    samples, annotations = load_split(build_refer(tmp_path), "refcoco", "val")
    source = StubSource()
    evaluate(source, samples, annotations, per_expression=True, show_progress=False)
    assert source.calls == [["the left box"], ["big box"], ["small box"], ["the square"]]


def test_no_target_expressions_of_grefcoco(tmp_path):
    samples, annotations = load_split(build_refer(tmp_path, "grefcoco", grefs=True), "grefcoco", "val")
    summary = evaluate(StubSource(), samples, annotations, show_progress=False).summary()
    assert summary["no_target_accuracy"] == 1.0  # "a unicorn" -> [REJ]
    assert summary["gIoU"] == pytest.approx((1 + 1 + 0 + 25 / 175 + 1) / 5)
    assert Metrics.score(square(0, 0, 2, 2), np.zeros((H, W), bool), "SEG") == (0.0, 4.0, 0.0, 0, 1, 0)


def test_resume_skips_finished_images(tmp_path):
    samples, annotations = load_split(build_refer(tmp_path), "refcoco", "val")
    progress = tmp_path / "progress.jsonl"
    first = evaluate(StubSource(), samples[:1], annotations, progress_file=progress, show_progress=False).summary()
    source = StubSource()
    resumed = evaluate(source, samples, annotations, progress_file=progress, show_progress=False).summary()
    assert source.calls == [["the square"]]
    assert resumed["expressions"] == 4 and first["expressions"] == 3
    assert resumed["cIoU"] == pytest.approx(225 / 495)


def test_refs_pickle_may_not_import_code(tmp_path):
    root = build_refer(tmp_path)
    with open(root / "refcoco" / "refs(unc).p", "wb") as handle:
        pickle.dump([{"split": "val", "payload": np.zeros(1)}], handle)  # needs numpy's reconstructor
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_split(root, "refcoco", "val")


def test_eval_command_with_the_golden_checkpoint(golden_checkpoint, tmp_path, capsys):
    root = build_refer(tmp_path / "refer")
    out = tmp_path / "result.json"
    code = main(["eval", "--model", str(golden_checkpoint), "--data", str(root), "--dataset", "refcoco", "--split", "val",
                 "--mode", "both", "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    for mode in ("image", "expression"):
        summary = report["results"][mode]
        assert summary["expressions"] == 4 and 0.0 <= summary["cIoU"] <= 1.0
    assert "cIoU" in capsys.readouterr().out


def test_missing_dataset_is_a_one_line_error(tmp_path, golden_checkpoint, capsys):
    code = main(["eval", "--model", str(golden_checkpoint), "--data", str(tmp_path), "--dataset", "refcoco", "--split", "val"])
    assert code == 2 and "refs(unc).p" in capsys.readouterr().err
