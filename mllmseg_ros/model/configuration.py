"""Configuration of an MLLMSeg checkpoint, read from the official ``config.json``.

Every size the model uses is derived here from the checkpoint's config: the ViT grid from image and patch size, the LLM
image grid from the pixel-shuffle ratio, the decoder's upsampling factor and per-patch pixel count from both. Nothing
downstream hard-codes 448, 32, 16, 196 or 1024.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from transformers import LlamaConfig, PretrainedConfig, Qwen2Config, Qwen3Config

from .errors import CheckpointError

if TYPE_CHECKING:
    import torch

# The official InternVLChatConfig's default when config.json has no ps_version: the original pixel shuffle (v1),
# whose transposes differ from v2's. Every MLLMSeg checkpoint states "v2" explicitly.
OFFICIAL_DEFAULT_PS_VERSION = "v1"


def _known_fields(cls, values: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in values.items() if k in names}


@dataclass(frozen=True)
class VisionConfig:
    """InternViT sizes (defaults: InternViT-300M-448px-V2.5, the encoder of every released MLLMSeg model)."""

    hidden_size: int = 1024
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    intermediate_size: int = 4096
    image_size: int = 448
    patch_size: int = 14
    num_channels: int = 3
    qkv_bias: bool = True
    qk_normalization: bool = False
    norm_type: str = "layer_norm"  # "layer_norm" (300M) or "rms_norm" (6B)
    layer_norm_eps: float = 1e-6
    hidden_act: str = "gelu"

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"vision hidden_size {self.hidden_size} is not divisible by {self.num_attention_heads} heads")
        if self.image_size % self.patch_size:
            raise ValueError(f"vision image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.norm_type not in ("layer_norm", "rms_norm"):
            raise ValueError(f"unknown vision norm_type {self.norm_type!r}")

    @property
    def grid_size(self) -> int:
        """Patches per side (32 for 448 px / 14 px patches)."""
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2


@dataclass(frozen=True)
class MaskDecoderConfig:
    """The light-weight mask decoder (``res_decoder``). Not in the official config: the official code fixes these values,
    which are our defaults. A checkpoint of our own (e.g. a small demo model) may override them in ``mllmseg_decoder``."""

    width: int = 1024
    num_heads: int = 8
    ffn_dim: int = 1024
    dropout: float = 0.1
    layer_norm_eps: float = 1e-5
    upsample_groups: int = 4
    upsample_offset_scale: float = 0.25  # DySample "lp" style without dynamic scope
    batch_norm_eps: float = 1e-5
    refine_kernel_size: int = 5

    def __post_init__(self) -> None:
        if self.width % self.num_heads:
            raise ValueError(f"decoder width {self.width} is not divisible by {self.num_heads} heads")
        if self.width % self.upsample_groups:
            raise ValueError(f"decoder width {self.width} is not divisible by {self.upsample_groups} upsample groups")


_LLM_FAMILIES = {
    # architecture name in llm_config -> (family, transformers config class used to run it)
    "Qwen2ForCausalLM": ("qwen2", Qwen2Config),
    # InternVL3.5 (1B-8B): Qwen3 dense models, run by transformers' own Qwen3 classes (q/k RMSNorm, explicit head_dim).
    "Qwen3ForCausalLM": ("qwen3", Qwen3Config),
    "InternLM2ForCausalLM": ("internlm2", LlamaConfig),
}


def build_language_config(llm_config: Mapping[str, Any]) -> tuple[str, PretrainedConfig]:
    """Turn the checkpoint's ``llm_config`` into a transformers config we can run without remote code.

    InternLM2 has no transformers class; its weights are converted to the Llama layout at load time
    (``conversion.py``), so its config becomes a ``LlamaConfig`` with the same sizes.
    """
    architectures = llm_config.get("architectures") or []
    if not architectures or architectures[0] not in _LLM_FAMILIES:
        raise CheckpointError(
            f"unsupported llm_config.architectures {architectures}; supported: {sorted(_LLM_FAMILIES)}"
        )
    family, config_class = _LLM_FAMILIES[architectures[0]]
    values = dict(llm_config)
    for key in ("architectures", "auto_map", "_name_or_path", "attn_implementation", "torch_dtype", "transformers_version"):
        values.pop(key, None)
    if family == "internlm2":
        values["attention_bias"] = bool(values.pop("bias", False))
        values["mlp_bias"] = False
    if family == "qwen3" and values.get("use_sliding_window"):
        # Every released InternVL3.5 config has it off; sliding-window layers would need their own cache handling.
        raise CheckpointError("llm_config.use_sliding_window is true; only full attention is supported for Qwen3")
    # MLLMSeg checkpoints store a separate output head (the 1B model's head is NOT tied to its embedding).
    values["tie_word_embeddings"] = bool(llm_config.get("tie_word_embeddings", False))
    # flash-attn is optional; SDPA is exact and available everywhere.
    config = config_class(**values, attn_implementation="sdpa")
    return family, config


def _read_special_token_ids(folder: Path) -> dict[str, int]:
    """Token ids of the added tokens, read from the tokenizer files (no tokenizer object needed)."""
    ids: dict[str, int] = {}
    added = folder / "added_tokens.json"
    if added.is_file():
        ids.update(json.loads(added.read_text(encoding="utf-8")))
    tokenizer_config = folder / "tokenizer_config.json"
    if tokenizer_config.is_file():
        decoder = json.loads(tokenizer_config.read_text(encoding="utf-8")).get("added_tokens_decoder", {})
        for token_id, entry in decoder.items():
            ids.setdefault(entry["content"], int(token_id))
    tokenizer_json = folder / "tokenizer.json"
    if tokenizer_json.is_file():
        for entry in json.loads(tokenizer_json.read_text(encoding="utf-8")).get("added_tokens", []):
            ids.setdefault(entry["content"], int(entry["id"]))
    return ids


@dataclass(frozen=True)
class SpecialTokens:
    """Ids of the tokens the model itself must recognise in ``input_ids``."""

    img_context: int
    seg: int
    rej: int
    img_start: int | None = None
    img_end: int | None = None

    @classmethod
    def from_folder(cls, folder: Path) -> "SpecialTokens":
        ids = _read_special_token_ids(folder)
        missing = [t for t in ("<IMG_CONTEXT>", "[SEG]", "[REJ]") if t not in ids]
        if missing:
            raise CheckpointError(
                f"{folder}: tokenizer files (added_tokens.json / tokenizer_config.json / tokenizer.json) "
                f"do not define {missing}; is this an MLLMSeg checkpoint?"
            )
        return cls(ids["<IMG_CONTEXT>"], ids["[SEG]"], ids["[REJ]"], ids.get("<img>"), ids.get("</img>"))

    def is_answer_slot(self, ids: "torch.Tensor") -> "torch.Tensor":
        """True where ``ids`` (any shape) holds an answer slot, [SEG] or [REJ]: the positions whose p-1 state is read
        for the decision (and, for [SEG], for the mask query)."""
        return (ids == self.seg) | (ids == self.rej)


@dataclass
class MLLMSegConfig:
    """Everything needed to build the model; ``from_json`` reads the official checkpoint config."""

    vision: VisionConfig = field(default_factory=VisionConfig)
    llm_family: str = "qwen2"
    llm: PretrainedConfig = field(default_factory=Qwen2Config)
    decoder: MaskDecoderConfig = field(default_factory=MaskDecoderConfig)
    tokens: SpecialTokens = field(default_factory=lambda: SpecialTokens(img_context=-1, seg=-2, rej=-3))
    downsample_ratio: float = 0.5
    select_layer: int = -1
    ps_version: str = "v2"
    template: str = "internvl2_5"
    # Training-time LoRA settings kept by the official config; used to merge an unmerged LoRA checkpoint.
    llm_lora_rank: int = 0
    backbone_lora_rank: int = 0

    def __post_init__(self) -> None:
        grid = self.vision.grid_size
        shuffled = grid * self.downsample_ratio
        if shuffled != int(shuffled) or int(1 / self.downsample_ratio) != 1 / self.downsample_ratio:
            raise ValueError(f"downsample_ratio {self.downsample_ratio} does not divide the {grid}x{grid} ViT grid")
        if self.ps_version not in ("v1", "v2"):
            raise ValueError(f"unknown ps_version {self.ps_version!r}")
        if self.decoder.width != self.vision.hidden_size:
            # The decoder uses ViT tokens directly as its queries and concatenates them with its own features.
            raise ValueError(
                f"mask decoder width ({self.decoder.width}) must equal the ViT width ({self.vision.hidden_size})"
            )
        if not (1 <= self.select_layer <= self.vision.num_hidden_layers or -self.vision.num_hidden_layers <= self.select_layer <= -1):
            raise ValueError(f"select_layer {self.select_layer} is outside the {self.vision.num_hidden_layers} ViT layers")

    # --- derived geometry -------------------------------------------------------------------------------------
    @property
    def image_size(self) -> int:
        return self.vision.image_size

    @property
    def llm_grid_size(self) -> int:
        """Image tokens per side in the LLM (16 for a 32x32 ViT grid and ratio 0.5)."""
        return int(self.vision.grid_size * self.downsample_ratio)

    @property
    def num_image_tokens(self) -> int:
        return self.llm_grid_size**2

    @property
    def upsample_factor(self) -> int:
        """LLM image grid -> ViT grid (2 for ratio 0.5)."""
        return self.vision.grid_size // self.llm_grid_size

    @property
    def projector_in_features(self) -> int:
        """Channels after pixel shuffle (ViT width x 4 for ratio 0.5)."""
        return self.vision.hidden_size * int(1 / self.downsample_ratio) ** 2

    # --- reading ------------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], tokens: SpecialTokens) -> "MLLMSegConfig":
        vision_raw = dict(raw.get("vision_config") or {})
        image_size = raw.get("force_image_size") or vision_raw.get("image_size", VisionConfig.image_size)
        vision_raw["image_size"] = image_size
        vision = VisionConfig(**_known_fields(VisionConfig, vision_raw))
        if "llm_config" not in raw:
            raise CheckpointError("config.json has no llm_config")
        family, llm = build_language_config(raw["llm_config"])
        decoder = MaskDecoderConfig(**_known_fields(MaskDecoderConfig, raw.get("mllmseg_decoder") or {}))
        if "mllmseg_decoder" not in raw and vision.hidden_size != MaskDecoderConfig.width:
            decoder = MaskDecoderConfig(width=vision.hidden_size)
        return cls(
            vision=vision,
            llm_family=family,
            llm=llm,
            decoder=decoder,
            tokens=tokens,
            downsample_ratio=float(raw.get("downsample_ratio", 0.5)),
            select_layer=int(raw.get("select_layer", -1)),
            ps_version=str(raw.get("ps_version", OFFICIAL_DEFAULT_PS_VERSION)),
            template=str(raw.get("template", "internvl2_5")),
            llm_lora_rank=int(raw.get("use_llm_lora", 0) or 0),
            backbone_lora_rank=int(raw.get("use_backbone_lora", 0) or 0),
        )

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "MLLMSegConfig":
        folder = Path(folder)
        path = folder / "config.json"
        if not path.is_file():
            raise CheckpointError(f"{path}: not found (expected an MLLMSeg checkpoint folder with config.json)")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
        return cls.from_dict(raw, SpecialTokens.from_folder(folder))
