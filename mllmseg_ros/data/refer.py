"""Reading REFER datasets (RefCOCO / RefCOCO+ / RefCOCOg, and gRefCOCO): refs, splits and annotation masks.

Layout (as the REFER toolkit and the official MLLMSeg evaluation expect):
    REFER_ROOT/<dataset>/refs(unc).p   (refcocog: refs(umd).p; grefcoco: grefs(unc).json)
    REFER_ROOT/<dataset>/instances.json
    REFER_ROOT/images/mscoco/images/train2014/COCO_train2014_<id>.jpg
Training (``ReferDataset``) and ``mllmseg-ros eval`` (``tools/refer_eval.py``) both read it from here.
"""
from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.prompt import clean_expression

REFS_FILES = {"refcoco": "refs(unc).p", "refcoco+": "refs(unc).p", "refcocog": "refs(umd).p", "grefcoco": "grefs(unc).json"}
IMAGE_DIR = Path("images") / "mscoco" / "images" / "train2014"


class _PlainUnpickler(pickle.Unpickler):
    """refs(*).p files hold only dicts, lists, strings and numbers: refuse anything that would import code."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a REFER refs file")


def load_refs(path: Path) -> list[dict]:
    if path.suffix == ".json":
        return json.loads(path.read_text())
    with open(path, "rb") as handle:
        return _PlainUnpickler(handle, encoding="latin1").load()


@dataclass
class ReferSample:
    image_path: Path
    expressions: list[str]
    ann_ids: list[list[int]]  # annotations of each expression's target (empty: no target, gRefCOCO)


def load_split(root: str | Path, dataset: str, split: str) -> tuple[list[ReferSample], dict]:
    """Samples grouped by image (all expressions of one image together) and the COCO annotations by id."""
    root = Path(root)
    if dataset not in REFS_FILES:
        raise ValueError(f"unknown dataset {dataset!r}; one of {sorted(REFS_FILES)}")
    refs_path = root / dataset / REFS_FILES[dataset]
    instances_path = root / dataset / "instances.json"
    for path in (refs_path, instances_path):
        if not path.is_file():
            raise ValueError(f"{path} not found (expected the REFER layout, see `mllmseg-ros eval --help`)")
    refs = [r for r in load_refs(refs_path) if r["split"] == split]
    if not refs:
        raise ValueError(f"no refs with split {split!r} in {refs_path}")
    instances = json.loads(instances_path.read_text())
    annotations = {a["id"]: a for a in instances["annotations"]}
    files = {img["id"]: img["file_name"] for img in instances["images"]}
    by_image: dict[int, ReferSample] = {}
    for ref in refs:
        image_id = ref["image_id"]
        sample = by_image.setdefault(image_id, ReferSample(root / IMAGE_DIR / files[image_id], [], []))
        ann_ids = ref["ann_id"] if isinstance(ref["ann_id"], list) else [ref["ann_id"]]
        ann_ids = [a for a in ann_ids if a in annotations]  # gRefCOCO marks "no target" with -1
        for sentence in ref["sentences"]:
            sample.expressions.append(clean_expression(sentence["sent"]))
            sample.ann_ids.append(ann_ids)
    return list(by_image.values()), annotations


def annotation_mask(annotation: dict, height: int, width: int) -> np.ndarray:
    """Polygon or RLE COCO segmentation -> H x W bool, decoded by pycocotools."""
    from pycocotools import mask as coco_mask

    segmentation = annotation["segmentation"]
    if isinstance(segmentation, list):  # polygons
        rle = coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):  # uncompressed RLE
        rle = coco_mask.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return coco_mask.decode(rle).astype(bool)
