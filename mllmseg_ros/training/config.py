"""What a training run does: ``TrainConfig``, read from a YAML/JSON file (``mllmseg-ros train --config``) and flags.

It holds MLLMSeg's official recipe (loss weights, AdamW with warm-up and cosine decay, which parts train, LoRA), what
it takes to run on one GPU or a CPU (bf16, gradient checkpointing, threads, data workers, a time limit), the sizes of
a new small model, and the one option beyond the recipe that the shipped demo model uses (``decision_from_step``).
Synthetic data has its own section, ``synthetic:`` (``data.datasets.SyntheticDataConfig``).

Options tried in the demo-model runs that did not help were removed; docs/demo_model_runs.md says what each did and
the commit where it can still be found.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..data.datasets import SyntheticDataConfig


@dataclass
class NewModelSizes:
    """The sizes of a new, randomly initialised model (used when ``base_model`` is empty); a fine-tuned model keeps
    its checkpoint's."""

    image_size: int = 224
    vision_width: int = 96
    vision_layers: int = 4
    llm_width: int = 128
    llm_layers: int = 4
    decoder_ffn: int = 0  # 0: the decoder width
    # The official decoder's dropout. Synthetic data is fresh at every step, so a model trained on it has nothing to
    # overfit, and 0 saves the cost of the random masks.
    decoder_dropout: float = 0.1
    vocab_size: int = 640  # of the tokenizer built for the synthetic scenes' words


@dataclass
class TrainConfig:
    out: str = "out/train"  # checkpoint-last/ (resumable) and, at the end, model/
    base_model: str = ""  # checkpoint folder to fine-tune; empty: a new small model of ``new_model``'s sizes
    data: str = "synthetic"  # "synthetic", a folder with samples.jsonl, or refer:ROOT:DATASET
    synthetic: SyntheticDataConfig = field(default_factory=SyntheticDataConfig)
    new_model: NewModelSizes = field(default_factory=NewModelSizes)
    # schedule
    steps: int = 1000
    max_minutes: float = 0.0  # stop (and save) after this long; 0 = no limit
    batch_size: int = 8
    lr: float = 4e-5
    weight_decay: float = 0.05
    warmup_ratio: float = 0.03
    seed: int = 0
    # loss: ce_weight * cross-entropy on the answer tokens + focal_weight * focal + dice_weight * dice on the masks
    ce_weight: float = 1.0
    focal_weight: float = 1.0
    dice_weight: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    # The [SEG]/[REJ] tokens get no cross-entropy before this step (0: from the start, as the official training). A
    # new small LLM otherwise first learns to predict [SEG] after every expression with one large constant state at
    # the position before it, and that state is the mask decoder's query: the decoder sees no question until the
    # state comes apart again (the "every object" plateau, docs/demo_model_runs.md).
    decision_from_step: int = 0
    # what trains
    freeze_vit: bool = False
    freeze_projector: bool = False
    llm: str = "full"  # full | lora | frozen
    lora_rank: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    # running
    device: str = "cpu"
    bf16: bool = False
    gradient_checkpointing: bool = False
    threads: int = 0  # torch CPU threads; 0: torch's default
    # Processes that build the next batches (scene rendering, image loading, tokenising) while the current step
    # trains; the batches are the same for any value. 0: built in the training process, between steps.
    data_workers: int = 0
    save_every: int = 500
    resume: bool = True  # continue from <out>/checkpoint-last when it exists

    def __post_init__(self) -> None:
        if self.llm not in ("full", "lora", "frozen"):
            raise ValueError(f"llm must be full, lora or frozen, got {self.llm!r}")

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> "TrainConfig":
        """A YAML or JSON file of options (the same layout as ``as_dict``); ``overrides`` replace top-level ones."""
        text = Path(path).read_text()
        if str(path).endswith(".json"):
            values = json.loads(text)
        else:
            import yaml

            values = yaml.safe_load(text)
        return cls.from_dict({**(values or {}), **overrides})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        _check_names(cls, values, "training options")
        sections = {"synthetic": SyntheticDataConfig, "new_model": NewModelSizes}
        parsed = dict(values)
        for name, section in sections.items():
            if name in parsed and not isinstance(parsed[name], section):
                _check_names(section, parsed[name] or {}, f"{name} options")
                parsed[name] = section(**(parsed[name] or {}))
        return cls(**parsed)

    def as_dict(self) -> dict[str, Any]:
        """The options as plain values (nested sections as dicts): what ``from_dict`` reads back."""
        return asdict(self)


def _check_names(section: type, values: dict[str, Any], what: str) -> None:
    unknown = set(values) - {f.name for f in fields(section)}
    if not unknown:
        return
    hints = []
    if section is TrainConfig:  # a section's option written at the top level
        for name, nested in (("synthetic", SyntheticDataConfig), ("new_model", NewModelSizes)):
            misplaced = sorted(unknown & {f.name for f in fields(nested)})
            if misplaced:
                hints.append(f"now under {name}: {misplaced}")
    raise ValueError(f"unknown {what}: {sorted(unknown)}" + "".join(f"; {hint}" for hint in hints))
