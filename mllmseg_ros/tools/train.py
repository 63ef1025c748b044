"""``mllmseg-ros train``: MLLMSeg's objective on synthetic scenes, a user folder or RefCOCO; writes an official-layout
checkpoint that ``MLLMSegModel.from_pretrained`` loads.

Loss = ce_weight * cross-entropy on the answer tokens ([SEG]/[REJ] included) + focal_weight * focal + dice_weight *
dice on the masks of the [SEG] targets (official weights 1/1/1). The focal loss is computed from the decoder's LOGITS
(the official code feeds it probabilities and so applies the sigmoid twice; we do not copy that). The decoder always
trains; the ViT, projector and LLM train, freeze, or (LLM) train through LoRA by flags, as in the official recipe.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..data.datasets import FolderDataset, ReferDataset, Sample, SyntheticDataset
from ..data.scenes import CLASSES, COLOURS, COMMAND_PREFIXES
from ..engine.preprocess import preprocess
from ..engine.prompt import SEG, REJ, build_prompt_turns, load_chat_tokenizer
from ..model import MLLMSegConfig, MLLMSegModel, SpecialTokens
from .checkpoint_builder import build_tokenizer, save_checkpoint, small_config_dict

IGNORE = -100


@dataclass
class TrainConfig:
    out: str = "out/train"
    base_model: str = ""  # checkpoint folder to fine-tune; empty: a new small model (sizes below)
    data: str = "synthetic"  # "synthetic", a user folder, or refer:ROOT:DATASET
    train_seeds: tuple[int, int] = (0, 50_000)  # synthetic scene seeds used for training
    targets_per_sample: int = 3
    # How a sample's questions share one sequence. False: the official conversation, one user turn naming every
    # expression and one answer listing them, so each [SEG] state has read all of the sample's expressions. True: one
    # image prefix, then each question with its answer as if asked alone (it attends to the prefix and to itself
    # only, at the positions it would have alone): every question is trained exactly as the node asks it, one at a
    # time. A demo-model run with 6 conversation questions reached training-batch IoU 0.56 but 0.20 on lone questions.
    independent_questions: bool = False
    absent_fraction: float = 0.2  # share of samples that also name an object not in the scene ([REJ])
    varied_questions: bool = False  # synthetic: 1..targets_per_sample questions, each absent with absent_fraction
    single_question_fraction: float = 0.0  # synthetic, fixed questions: share of samples asking one question alone
    single_absent_fraction: float | None = None  # how often such a lone question is absent (None: absent_fraction)
    # Synthetic: "colour" names absent objects by colour and class only; "all" in every wording of the present ones
    # (with "colour", a model can learn the wording rather than look whether the object is there).
    absent_kinds: str = "colour"
    # A curriculum: the lone questions join the data only from this step on. A new model first learns to find objects
    # on the multi-question data (the phase where every object gets the same mask ends around step 1500-2500 for the
    # demo configuration), then to answer one question alone, as a robot asks.
    single_question_from_step: int = 0
    # A curriculum of expression kinds (synthetic data): until ``first_kinds_until_step`` the present targets are asked
    # only in these kinds (e.g. ["colour"]). Every expression names the target's class, and a relational one ("the ball
    # next to the green box") a colour that belongs to another object, so a new model learns to pick objects by class
    # and long keeps merging a red cup with a black one; asked by colour and class first, it has to look at colour.
    first_kinds: tuple[str, ...] = ()
    first_kinds_until_step: int = 0
    scene_size: tuple[int, int] = (320, 240)  # width, height of synthetic training images
    max_minutes: float = 0.0  # stop (and save) after this long; 0 = no limit
    steps: int = 1000
    batch_size: int = 8
    lr: float = 4e-5
    weight_decay: float = 0.05
    warmup_ratio: float = 0.03
    ce_weight: float = 1.0
    # Weight of the [SEG]/[REJ] answer tokens inside the cross-entropy (1.0: every answer token alike, as the official
    # training). Among ~10 echoed words per answer, the one token that says whether the object is there is a small
    # share of the loss; a larger weight makes [REJ] learnt sooner.
    decision_weight: float = 1.0
    # The [SEG]/[REJ] tokens get no cross-entropy before this step. A new small LLM otherwise learns first to predict
    # [SEG] after every expression with one large constant state at the position before it (norm 60, the same for
    # every expression to 1 part in 1000 in a demo-model run at step 3500), and that state is the mask decoder's
    # query: the decoder sees no question until the state comes apart again (the "every object" plateau).
    decision_from_step: int = 0
    focal_weight: float = 1.0
    dice_weight: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    freeze_vit: bool = False
    freeze_projector: bool = False
    llm: str = "full"  # full | lora | frozen
    lora_rank: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    bf16: bool = False
    gradient_checkpointing: bool = False
    save_every: int = 500
    resume: bool = True
    seed: int = 0
    device: str = "cpu"
    threads: int = 0
    # Processes that build the next batches (scene rendering, image loading) while the current step trains; the
    # samples and their order are the same for any value. 0: built in the training process, between steps.
    data_workers: int = 0
    # sizes of a new model (base_model empty)
    image_size: int = 224
    vision_width: int = 96
    vision_layers: int = 4
    llm_width: int = 128
    llm_layers: int = 4
    decoder_ffn: int = 0  # 0: the decoder width
    # The official decoder's dropout. Synthetic data is fresh at every step, so a model trained on it has nothing to
    # overfit; 0 also saves the random masks' cost (a fifth of a CPU step).
    decoder_dropout: float = 0.1
    vocab_size: int = 640

    @classmethod
    def from_file(cls, path: str | Path, **overrides) -> "TrainConfig":
        values = json.loads(Path(path).read_text()) if str(path).endswith(".json") else __import__("yaml").safe_load(Path(path).read_text())
        return cls.from_dict({**(values or {}), **overrides})

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown training options: {sorted(unknown)}")
        for key in ("train_seeds", "scene_size", "first_kinds"):
            if key in values:
                values = {**values, key: tuple(values[key])}
        return cls(**values)


# --- losses ---------------------------------------------------------------------------------------------------------
def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Sigmoid focal loss from logits, mean over pixels, summed over masks / number of masks. n x S x S."""
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = logits.sigmoid()
    p_t = p * target + (1 - p) * (1 - target)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return (alpha_t * ce * (1 - p_t) ** gamma).flatten(1).mean(1).mean()


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    p = logits.sigmoid().flatten(1)
    t = target.flatten(1)
    return (1 - (2 * (p * t).sum(1) + smooth) / (p.sum(1) + t.sum(1) + smooth)).mean()


# --- batches --------------------------------------------------------------------------------------------------------
class Batcher:
    """Samples -> padded input ids, labels (answer tokens only), attention, pixel values, masks at the model's size and
    position ids (see ``__call__``)."""

    def __init__(self, tokenizer, config: MLLMSegConfig, independent_questions: bool = False) -> None:
        self.tokenizer, self.config = tokenizer, config
        self.independent_questions = independent_questions
        self.pad_id = 0

    def encode(self, sample: Sample) -> tuple[list[int], list[int]]:
        """The official conversation naming every expression of ``sample``: ids and labels."""
        answers = [SEG if mask.any() else REJ for mask in sample.masks]
        return self._encode_conversation(sample.expressions, answers)

    def encode_independent(self, sample: Sample) -> tuple[list[int], list[int], list[int]]:
        """The image prefix followed by each question's own part (see ``TrainConfig.independent_questions``): ids,
        labels and the segment of every token (0: the shared prefix, k: the k-th question)."""
        ids: list[int] = []
        labels: list[int] = []
        segments: list[int] = []
        for k, (expression, mask) in enumerate(zip(sample.expressions, sample.masks), start=1):
            alone_ids, alone_labels = self._encode_conversation([expression], [SEG if mask.any() else REJ])
            prefix = self._image_prefix_length(alone_ids)
            if k == 1:
                ids, labels, segments = alone_ids[:prefix], alone_labels[:prefix], [0] * prefix
            elif alone_ids[:prefix] != ids[:prefix]:
                raise ValueError("the questions of one sample do not share their image prefix")
            ids += alone_ids[prefix:]
            labels += alone_labels[prefix:]
            segments += [k] * (len(alone_ids) - prefix)
        return ids, labels, segments

    def _image_prefix_length(self, ids: list[int]) -> int:
        """Tokens up to and including </img>: what every question about the image reads the same."""
        return ids.index(self.config.tokens.img_end) + 1

    def _encode_conversation(self, expressions: list[str], answers: list[str]) -> tuple[list[int], list[int]]:
        turns = build_prompt_turns(expressions, self.config.num_image_tokens, answers, bos=self.tokenizer.bos_token)
        ids, labels = [], []
        for turn in (turns.system, turns.user):
            part = self.tokenizer.encode(turn)
            ids += part
            labels += [IGNORE] * len(part)
        header, tail = "<|im_start|>assistant\n", "\n"
        head_ids = self.tokenizer.encode(header)
        body = self.tokenizer.encode(turns.assistant[len(header): -len(tail)])  # the answer and <|im_end|>
        tail_ids = self.tokenizer.encode(tail)
        ids += head_ids + body + tail_ids
        labels += [IGNORE] * len(head_ids) + body + [IGNORE] * len(tail_ids)
        return ids, labels

    def __call__(self, samples: list[Sample], device: torch.device = torch.device("cpu")):
        """-> input_ids B x T, labels B x T, attention (B x T padding mask, or B x 1 x T x T with independent
        questions), pixels B x 3 x S x S, masks (per sample n_i x S x S), position_ids (None, or B x T)."""
        if self.independent_questions:
            encoded = [self.encode_independent(s) for s in samples]
        else:
            encoded = [(*self.encode(s), None) for s in samples]
        width = max(len(ids) for ids, _, _ in encoded)
        input_ids = torch.full((len(samples), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(samples), width), IGNORE, dtype=torch.long)
        attention = torch.zeros((len(samples), width), dtype=torch.bool)
        for row, (ids, lab, _) in enumerate(encoded):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, : len(lab)] = torch.tensor(lab)
            attention[row, : len(ids)] = True
        position_ids = None
        if self.independent_questions:
            attention, position_ids = _question_blocks([segments for _, _, segments in encoded], width)
        size = self.config.image_size
        pixels = torch.cat([preprocess(s.image, size) for s in samples])
        # One target map per [SEG] answer (present targets, in prompt order), at the model's input size.
        masks = []
        for sample in samples:
            present = [resize_mask(m, size) for m in sample.masks if m.any()]
            masks.append(torch.from_numpy(np.stack(present)) if present else torch.zeros(0, size, size))
        return batch_to((input_ids, labels, attention, pixels, masks, position_ids), device)


def batch_to(batch: tuple, device: torch.device) -> tuple:
    """A Batcher batch moved to ``device``."""
    input_ids, labels, attention, pixels, masks, position_ids = batch
    return (input_ids.to(device), labels.to(device), attention.to(device), pixels.to(device), [m.to(device) for m in masks],
            None if position_ids is None else position_ids.to(device))


def _question_blocks(segments: list[list[int]], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention B x 1 x T x T (True: may attend) and position ids B x T for rows of segments (0: the shared prefix,
    k: question k, padding after the row's end): causal inside the prefix and inside each question, and every question
    also reads the whole prefix; a question's positions continue the prefix's as if it were the only one. Padding
    tokens attend to themselves only (a row that attends to nothing gives NaN in SDPA); their outputs are unused."""
    batch = len(segments)
    segment = torch.full((batch, width), -1, dtype=torch.long)
    for row, values in enumerate(segments):
        segment[row, : len(values)] = torch.tensor(values)
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    same = segment[:, :, None] == segment[:, None, :]  # B x T(query) x T(key)
    reads_prefix = (segment[:, :, None] > 0) & (segment[:, None, :] == 0)
    attention = ((same & causal) | reads_prefix) & (segment[:, None, :] >= 0)
    attention |= torch.eye(width, dtype=torch.bool)  # padding rows
    position_ids = torch.zeros((batch, width), dtype=torch.long)
    for row, values in enumerate(segments):
        prefix_length, seen = values.count(0), {}
        for col, k in enumerate(values):  # the prefix counts from 0, each question from the prefix's length
            position_ids[row, col] = col if k == 0 else prefix_length + seen.get(k, 0)
            seen[k] = seen.get(k, 0) + 1
    return attention.unsqueeze(1), position_ids


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """H x W bool -> size x size float32 in [0, 1] (area averaging keeps thin parts)."""
    import cv2

    return cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)


def training_losses(model: MLLMSegModel, batch, cfg: TrainConfig, step: int | None = None) -> tuple[torch.Tensor, dict]:
    """The loss of one batch and its statistics; ``step`` (None: after every curriculum switch) for
    ``decision_from_step``."""
    input_ids, labels, attention, pixels, masks, position_ids = batch
    tokens = model.config.tokens
    vit_features, image_embeds = model.extract_image_features(pixels)
    hidden = model.run_language_model(model.embed_inputs(input_ids, image_embeds), attention, position_ids)
    # Cross-entropy only where an answer token is predicted: position p predicts labels[p + 1].
    rows, cols = (labels[:, 1:] != IGNORE).nonzero(as_tuple=True)
    logits = model.language_model.lm_head(hidden[rows, cols]).float()
    targets = labels[rows, cols + 1]
    decisions = (targets == tokens.seg) | (targets == tokens.rej)
    decision_weight = cfg.decision_weight if step is None or step >= cfg.decision_from_step else 0.0
    weights = torch.where(decisions, decision_weight, 1.0)  # all 1.0 by default: the plain mean, as official
    ce = (F.cross_entropy(logits, targets, reduction="none") * weights).sum() / weights.sum()
    # Masks for the [SEG] answers, from the hidden state before each [SEG].
    seg_rows, seg_cols = (input_ids == tokens.seg).nonzero(as_tuple=True)
    context = model.res_decoder.encode_image(vit_features, model.image_states_from_hidden(input_ids, hidden))
    mask_logits = model.res_decoder.decode_queries(context, seg_rows, hidden[seg_rows, seg_cols - 1]).float()
    target = torch.cat(masks)
    focal = focal_loss(mask_logits, target, cfg.focal_alpha, cfg.focal_gamma) if len(target) else ce * 0
    dice = dice_loss(mask_logits, target) if len(target) else ce * 0
    loss = cfg.ce_weight * ce + cfg.focal_weight * focal + cfg.dice_weight * dice
    with torch.no_grad():
        focal, dice = focal.detach(), dice.detach()
        predicted, truth = mask_logits > 0, target > 0.5
        inter = (predicted & truth).flatten(1).sum(1).float()
        union = (predicted | truth).flatten(1).sum(1).float().clamp(min=1)
        iou = (inter / union).mean().item() if len(target) else float("nan")
        correct = logits.argmax(-1) == targets
        answer_ok = correct.float().mean().item()
        # The [SEG]/[REJ] tokens alone: the answer accuracy above is dominated by the echoed expressions.
        decision_ok = correct[decisions].float().mean().item() if decisions.any() else float("nan")
    stats = {"loss": loss.detach().item(), "ce": ce.detach().item(), "focal": focal.item(), "dice": dice.item(), "iou": iou,
             "answer_acc": answer_ok, "decision_acc": decision_ok}
    return loss, stats


# --- model set-up ---------------------------------------------------------------------------------------------------
def scene_corpus() -> list[str]:
    """Words of the synthetic scenes' expressions, for a small tokenizer of a new model."""
    spatial = ["on the left", "on the right", "closest to the camera", "next to the", "the largest", "the smallest"]
    return [f"the {c} {k}" for c in COLOURS for k in CLASSES] + spatial + list(COMMAND_PREFIXES)


def new_model(cfg: TrainConfig, folder: Path) -> tuple[MLLMSegModel, dict]:
    """A randomly initialised small model with its own tokenizer written to ``folder``."""
    token_ids = build_tokenizer(folder, scene_corpus() * 3, vocab_size=cfg.vocab_size)
    config_dict = small_config_dict(
        vocab_size=max(token_ids.values()) + 1, image_size=cfg.image_size, vision_width=cfg.vision_width,
        vision_layers=cfg.vision_layers, llm_width=cfg.llm_width, llm_layers=cfg.llm_layers,
        decoder_ffn=cfg.decoder_ffn or None, decoder_dropout=cfg.decoder_dropout,
    )
    tokens = SpecialTokens(token_ids["<IMG_CONTEXT>"], token_ids["[SEG]"], token_ids["[REJ]"], token_ids["<img>"], token_ids["</img>"])
    torch.manual_seed(cfg.seed)
    return MLLMSegModel(MLLMSegConfig.from_dict(config_dict, tokens)), config_dict


def set_trainable(model: MLLMSegModel, cfg: TrainConfig) -> MLLMSegModel:
    model.vision_model.requires_grad_(not cfg.freeze_vit)
    model.mlp1.requires_grad_(not cfg.freeze_projector)
    model.res_decoder.requires_grad_(True)
    if cfg.llm == "full":
        model.language_model.requires_grad_(True)
    elif cfg.llm in ("lora", "frozen"):
        model.language_model.requires_grad_(False)
        # As the official recipe: the embedding, output head and final norm train even when the LLM is frozen/LoRA.
        for module in (model.language_model.embed_tokens, model.language_model.lm_head, model.language_model.model.norm):
            module.requires_grad_(True)
        if cfg.llm == "lora":
            from peft import LoraConfig, get_peft_model

            lora = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                              target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
            model.language_model.model = get_peft_model(model.language_model.model, lora)
    else:
        raise ValueError(f"llm must be full, lora or frozen, got {cfg.llm!r}")
    if cfg.gradient_checkpointing:
        model.language_model.model.gradient_checkpointing_enable()
    return model


def merged_for_saving(model: MLLMSegModel) -> MLLMSegModel:
    backbone = model.language_model.model
    if hasattr(backbone, "merge_and_unload"):
        model.language_model.model = backbone.merge_and_unload()
    return model


def make_dataset(cfg: TrainConfig):
    if cfg.data == "synthetic":
        from ..data.scenes import Camera

        return SyntheticDataset(*cfg.train_seeds, targets=cfg.targets_per_sample, absent_fraction=cfg.absent_fraction,
                                camera=Camera(*cfg.scene_size), varied_questions=cfg.varied_questions,
                                single_question_fraction=cfg.single_question_fraction,
                                single_absent_fraction=cfg.single_absent_fraction, absent_kinds=cfg.absent_kinds,
                                kinds=cfg.first_kinds if cfg.first_kinds_until_step > 0 else ())
    if cfg.data.startswith("refer:"):
        _, root, dataset = cfg.data.split(":", 2)
        return ReferDataset(root, dataset, "train")
    return FolderDataset(cfg.data)


class _Phases:
    """Consecutive datasets of the same length n: index k * n + i reads item i of the k-th."""

    def __init__(self, datasets: list) -> None:
        self.datasets, self.length = datasets, len(datasets[0])

    def __len__(self) -> int:
        return self.length * len(self.datasets)

    def __getitem__(self, index: int):
        return self.datasets[index // self.length][index % self.length]


def data_phases(cfg: TrainConfig) -> list[tuple[int, TrainConfig]]:
    """(first step, data options) of each phase of the synthetic-data curricula, in order: the first kinds alone
    until ``first_kinds_until_step``, the lone questions from ``single_question_from_step``."""
    switches = {cfg.first_kinds_until_step if cfg.first_kinds else 0,
                cfg.single_question_from_step if cfg.single_question_fraction else 0}
    return [(start, _data_options_at(cfg, start)) for start in sorted(switches | {0})]


def _data_options_at(cfg: TrainConfig, step: int) -> TrainConfig:
    return TrainConfig.from_dict({
        **asdict(cfg),
        "first_kinds": cfg.first_kinds if step < cfg.first_kinds_until_step else (),
        "single_question_fraction": cfg.single_question_fraction if step >= cfg.single_question_from_step else 0.0,
    })


def _batch_indices(length: int, cfg: TrainConfig, step: int, phase_starts: list[int]) -> Iterator[list[int]]:
    """The dataset indices of each step's batch from ``step`` on (a resumed run draws from a reseeded generator),
    shifted by ``k * length`` in the k-th phase (``phase_starts``: each phase's first step)."""
    rng = np.random.default_rng(cfg.seed + step)
    for current in range(step, cfg.steps):
        phase = sum(1 for start in phase_starts[1:] if current >= start)
        yield [phase * length + int(i) for i in rng.integers(0, length, cfg.batch_size)]


def _as_list(samples: list) -> list:
    return samples


def sample_batches(dataset, cfg: TrainConfig, step: int = 0, collate: Callable[[list], object] = _as_list) -> Iterable:
    """Each remaining step's ``collate(list of samples)``, built in ``cfg.data_workers`` background processes when > 0.

    torch's DataLoader does the process handling; its batch sampler is the same index sequence as the serial path, and
    it delivers batches in order, so the samples do not depend on the number of workers. ``collate`` runs in the
    workers too: the training loop gets ready tensors (the Batcher's tokenising and resizing took a sixth of a CPU
    step when it ran between steps)."""
    length, phases = len(dataset), data_phases(cfg)
    if len(phases) > 1:
        if not isinstance(dataset, SyntheticDataset):
            raise ValueError("single_question_from_step and first_kinds need synthetic data")
        dataset = _Phases([make_dataset(options) for _, options in phases])
    indices = _batch_indices(length, cfg, step, [start for start, _ in phases])
    if cfg.data_workers <= 0:
        return (collate([dataset[i] for i in batch]) for batch in indices)
    from torch.utils.data import DataLoader

    return DataLoader(dataset, batch_sampler=list(indices), num_workers=cfg.data_workers, collate_fn=collate,
                      prefetch_factor=2, persistent_workers=False)


def lr_at(step: int, cfg: TrainConfig) -> float:
    warmup = max(1, int(cfg.warmup_ratio * cfg.steps))
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, cfg.steps - warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


# --- the loop -------------------------------------------------------------------------------------------------------
def train(cfg: TrainConfig, show_progress: bool = True) -> Path:
    """Train and return the folder of the final checkpoint (``<out>/model``)."""
    from tqdm import tqdm

    out = Path(cfg.out)
    state_dir = out / "checkpoint-last"
    device = torch.device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    resume = cfg.resume and (state_dir / "training_state.pt").is_file()
    source = state_dir if resume else (Path(cfg.base_model) if cfg.base_model else None)
    if source is not None:
        model = MLLMSegModel.from_pretrained(source, device="cpu")
        config_dict = json.loads((source / "config.json").read_text())
        tokenizer_dir = source
    else:
        tokenizer_dir = out / "tokenizer"
        model, config_dict = new_model(cfg, tokenizer_dir)
    tokenizer = load_chat_tokenizer(tokenizer_dir)
    model = set_trainable(model, cfg).to(device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    step = 0
    if resume:
        state = torch.load(state_dir / "training_state.pt", map_location="cpu", weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
    dataset = make_dataset(cfg)
    batcher = Batcher(tokenizer, model.config, cfg.independent_questions)
    batches = iter(sample_batches(dataset, cfg, step, collate=batcher))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16)
    bar = tqdm(total=cfg.steps, initial=step, disable=not show_progress, unit="step")
    running: dict[str, float] = {}
    started = time.monotonic()
    while step < cfg.steps:
        if cfg.max_minutes and time.monotonic() - started > 60 * cfg.max_minutes:
            _save(model, config_dict, tokenizer_dir, state_dir, optimizer, step, cfg)
            break
        batch = batch_to(next(batches), device)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        with autocast:
            loss, stats = training_losses(model, batch, cfg, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        for key, value in stats.items():  # moving averages for the progress bar (a batch without masks has no IoU)
            if not math.isnan(value):
                running[key] = value if key not in running else 0.9 * running[key] + 0.1 * value
        bar.update(1)
        bar.set_postfix(loss=f"{running.get('loss', 0):.3f}", iou=f"{running.get('iou', 0):.3f}",
                        ans=f"{running.get('answer_acc', 0):.2f}", seg_rej=f"{running.get('decision_acc', 0):.2f}")
        if step % cfg.save_every == 0 or step == cfg.steps:
            _save(model, config_dict, tokenizer_dir, state_dir, optimizer, step, cfg)
    bar.close()
    final = out / "model"
    if final.exists():
        shutil.rmtree(final)
    shutil.copytree(state_dir, final, ignore=shutil.ignore_patterns("training_state.pt"))
    (final / "training_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    return final


def _save(model, config_dict, tokenizer_dir: Path, state_dir: Path, optimizer, step: int, cfg: TrainConfig) -> None:
    import copy

    tmp = state_dir.with_name(state_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    plain = merged_for_saving(copy.deepcopy(model)).eval()
    save_checkpoint(plain, config_dict, tmp)
    for item in tokenizer_dir.iterdir():
        if item.is_file() and item.name not in ("config.json", "model.safetensors", "training_state.pt", "training_config.json"):
            shutil.copy(item, tmp / item.name)
    torch.save({"optimizer": optimizer.state_dict(), "step": step}, tmp / "training_state.pt")
    if state_dir.exists():
        shutil.rmtree(state_dir)
    tmp.rename(state_dir)  # a crash mid-save leaves the previous checkpoint intact
