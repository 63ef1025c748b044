"""The user-folder training data format (docs/training.md)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from mllmseg_ros.data.datasets import FolderDataset


def test_folder_dataset(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    image = np.zeros((20, 30, 3), np.uint8)
    mask = np.zeros((20, 30), np.uint8)
    mask[5:10, 5:10] = 255
    cv2.imwrite(str(tmp_path / "images" / "a.png"), image)
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), mask)
    record = {"image": "images/a.png", "targets": [{"expression": "The Cup.", "mask": "masks/a.png"}, {"expression": "a box", "mask": None}]}
    (tmp_path / "samples.jsonl").write_text(json.dumps(record) + "\n")
    sample = FolderDataset(tmp_path)[0]
    assert sample.expressions == ["the cup", "a box"]
    assert sample.masks[0].sum() == 25 and not sample.masks[1].any()
    with pytest.raises(ValueError, match="samples.jsonl"):
        FolderDataset(tmp_path / "nowhere")


def test_refer_dataset_gives_one_sample_per_image_with_its_masks(tmp_path):
    """A REFER train split (data/refer.py reads it), one image with two expressions about a 10 x 10 square."""
    import pickle

    from mllmseg_ros.data.datasets import ReferDataset
    from mllmseg_ros.data.refer import IMAGE_DIR

    (tmp_path / "refcoco").mkdir()
    instances = {"images": [{"id": 1, "file_name": "COCO_train2014_1.jpg", "height": 20, "width": 30}],
                 "annotations": [{"id": 7, "image_id": 1, "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]}]}
    (tmp_path / "refcoco" / "instances.json").write_text(json.dumps(instances))
    refs = [{"ann_id": 7, "image_id": 1, "split": "train", "sentences": [{"sent": "The Box."}, {"sent": "left box"}]},
            {"ann_id": 7, "image_id": 1, "split": "val", "sentences": [{"sent": "not in train"}]}]
    with open(tmp_path / "refcoco" / "refs(unc).p", "wb") as handle:
        pickle.dump(refs, handle, protocol=2)
    (tmp_path / IMAGE_DIR).mkdir(parents=True)
    cv2.imwrite(str(tmp_path / IMAGE_DIR / "COCO_train2014_1.jpg"), np.full((20, 30, 3), 90, np.uint8))
    dataset = ReferDataset(tmp_path, "refcoco", "train")
    assert len(dataset) == 1
    sample = dataset[0]
    assert sample.image.shape == (20, 30, 3) and sample.expressions == ["the box", "left box"]
    assert len(sample.masks) == 2 and all(np.array_equal(mask, sample.masks[0]) for mask in sample.masks)
    assert sample.masks[0][:10, :10].all() and sample.masks[0].sum() <= 11 * 11
