#!/usr/bin/env python3
"""Time the MLLMSeg forward pass per stage and end to end: ours (``forward_ids``) beside the official inference path.

Random weights, model shapes of the released checkpoints, a prompt of realistic length; nothing is downloaded.
"official" runs the same model and the same stage methods, with the official code's extra costs put back: the LLM
over the whole prompt on every call, the vocabulary head over every position of the sequence, and the decoder's
image-only part recomputed for each expression. On a GPU, "ours" end to end replays CUDA graphs of the ViT and LLM
passes (``model/cuda_graphs.py``; off with --no-cuda-graphs); the stage times of every path come from eager passes.

    .venv/bin/python benchmarks/bench_model.py --shapes tiny,1b --dtypes fp32,bf16 --expressions 1,4 --json out.json
"""
from __future__ import annotations

import argparse
from contextlib import contextmanager
import ctypes
import gc
import json
import os
import platform
import re
import resource
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any, Callable, Iterator, TypeVar

import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmark the checkout, installed or not
from mllmseg_ros.model import MaskDecoderConfig, MLLMSegConfig, MLLMSegModel, SpecialTokens, VisionConfig  # noqa: E402
from mllmseg_ros.model import build_language_config  # noqa: E402
from mllmseg_ros.model.vision import VisionAttention  # noqa: E402

T = TypeVar("T")

# --- model shapes (numbers of the released checkpoints; the decoder width always equals the ViT width) -------------
INTERNVIT_300M = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096,
                  "layer_norm_eps": 1e-6}
SHAPES: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        "vision": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 256},
        "llm": {"architectures": ["Qwen2ForCausalLM"], "hidden_size": 64, "num_hidden_layers": 2,
                "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 256, "vocab_size": 512},
    },
    "1b": {  # InternViT-300M + Qwen2.5-0.5B (vocabulary extended by MLLMSeg's added tokens)
        "vision": INTERNVIT_300M,
        "llm": {"architectures": ["Qwen2ForCausalLM"], "hidden_size": 896, "num_hidden_layers": 24,
                "num_attention_heads": 14, "num_key_value_heads": 2, "intermediate_size": 4864, "vocab_size": 151674,
                "rope_theta": 1e6, "rms_norm_eps": 1e-6, "tie_word_embeddings": False},
    },
    "2b": {  # InternViT-300M + InternLM2.5-1.8B
        "vision": INTERNVIT_300M,
        "llm": {"architectures": ["InternLM2ForCausalLM"], "hidden_size": 2048, "num_hidden_layers": 24,
                "num_attention_heads": 16, "num_key_value_heads": 8, "intermediate_size": 8192, "vocab_size": 92553,
                "rope_theta": 1e6, "rms_norm_eps": 1e-5, "bias": False},
    },
    "4b": {  # InternViT-300M + Qwen2.5-3B
        "vision": INTERNVIT_300M,
        "llm": {"architectures": ["Qwen2ForCausalLM"], "hidden_size": 2048, "num_hidden_layers": 36,
                "num_attention_heads": 16, "num_key_value_heads": 2, "intermediate_size": 11008, "vocab_size": 151674,
                "rope_theta": 1e6, "rms_norm_eps": 1e-6, "tie_word_embeddings": False},
    },
    "8b": {  # InternViT-300M + InternLM2.5-7B
        "vision": INTERNVIT_300M,
        "llm": {"architectures": ["InternLM2ForCausalLM"], "hidden_size": 4096, "num_hidden_layers": 32,
                "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 92553,
                "rope_theta": 1e6, "rms_norm_eps": 1e-5, "bias": False},
    },
}
# InternVL3.5 (Qwen3; head_dim 128 whatever the width; a separate output head as in the model cards' parameter
# counts). Vocabulary: Qwen3's 151669 tokens + InternVL's 9 + [SEG], [REJ], as MLLMSeg's training resizes it.
QWEN3_LLM = {"architectures": ["Qwen3ForCausalLM"], "head_dim": 128, "num_key_value_heads": 8, "vocab_size": 151680,
             "rope_theta": 1e6, "rms_norm_eps": 1e-6, "max_position_embeddings": 40960, "use_sliding_window": False,
             "tie_word_embeddings": False}
SHAPES["3.5-4b"] = {  # InternViT-300M + Qwen3-4B
    "vision": INTERNVIT_300M,
    "llm": {**QWEN3_LLM, "hidden_size": 2560, "num_hidden_layers": 36, "num_attention_heads": 32, "intermediate_size": 9728},
}
SHAPES["3.5-8b"] = {  # InternViT-300M + Qwen3-8B
    "vision": INTERNVIT_300M,
    "llm": {**QWEN3_LLM, "hidden_size": 4096, "num_hidden_layers": 36, "num_attention_heads": 32, "intermediate_size": 12288},
}
GPU_ONLY_SHAPES = {"2b", "4b", "8b", "3.5-4b", "3.5-8b"}  # left out of the default list on CPU: 8-35 GB in fp32, slow
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# Token counts of the official prompt (notes: 303 tokens for one expression): system turn, question text without the
# expressions, each expression ("the red cup" and its separator), closing tokens ("." + <|im_end|> + newline).
PROMPT_TOKENS = {"system": 17, "question": 12, "expression": 6, "closing": 3}
STAGES = ("vit", "projector", "llm", "head", "decoder")


def build_config(shape: str) -> MLLMSegConfig:
    vision = VisionConfig(**SHAPES[shape]["vision"])
    family, llm = build_language_config(SHAPES[shape]["llm"])
    vocab = llm.vocab_size
    # The last five ids of the vocabulary play the added tokens; every other id is an ordinary word.
    tokens = SpecialTokens(img_context=vocab - 3, seg=vocab - 2, rej=vocab - 1, img_start=vocab - 5, img_end=vocab - 4)
    return MLLMSegConfig(vision=vision, llm_family=family, llm=llm,
                         decoder=MaskDecoderConfig(width=vision.hidden_size), tokens=tokens)


def build_model(shape: str, dtype: torch.dtype, device: torch.device, config: MLLMSegConfig | None = None) -> MLLMSegModel:
    """A random-weight model of ``shape`` (or of ``config``, a configuration of that shape with other token ids)."""
    torch.manual_seed(0)
    default_dtype = torch.get_default_dtype()
    # Initialise in the target dtype: a float32 copy first would need 34 GB for the 3.5-8b shape before any bf16 run.
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):  # initialise on the target device: a CPU init of the 8b shape takes minutes
            model = MLLMSegModel(config or build_config(shape))
    finally:
        torch.set_default_dtype(default_dtype)
    return model.to(dtype).eval()  # eval: the decoder has dropout and BatchNorm


def make_prompt(config: MLLMSegConfig, expressions: int, device: torch.device) -> torch.Tensor:
    """1 x T prompt ids laid out like the official RES prompt, with random ordinary words."""
    gen = torch.Generator().manual_seed(expressions)
    tok = config.tokens

    def words(n: int) -> list[int]:
        return torch.randint(0, config.llm.vocab_size - 5, (n,), generator=gen).tolist()

    ids = words(PROMPT_TOKENS["system"]) + [tok.img_start] + [tok.img_context] * config.num_image_tokens + [tok.img_end]
    ids += words(PROMPT_TOKENS["question"] + PROMPT_TOKENS["expression"] * expressions)  # "What are a, b in ...?"
    for _ in range(expressions):  # "Sure,the red cup:[SEG], ..."
        ids += words(PROMPT_TOKENS["expression"]) + [tok.seg]
    ids += words(PROMPT_TOKENS["closing"])
    return torch.tensor([ids], device=device)


# --- clocks and memory -----------------------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # CUDA runs asynchronously: without this a clock reads launch time only


_MALLOC_TRIM = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS; False where the kernel does not allow it."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)  # hand freed heap back to the OS first: the next peak then starts from live memory
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    match = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
    kib = int(match.group(1)) if match else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024


class LapClock:
    """Wall-clock laps: ``lap(name)`` charges the time since the previous lap to ``name``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.laps: dict[str, float] = {}
        synchronize(device)
        self._last = perf_counter()

    def lap(self, name: str) -> None:
        synchronize(self.device)
        now = perf_counter()
        self.laps[name], self._last = now - self._last, now


@dataclass
class Runs:
    """Measurements of one path on one case, one entry per timed repeat."""

    end_to_end_s: list[float] = field(default_factory=list)
    stages_s: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    peak_rss_mb: float = 0.0
    peak_cuda_mb: float = 0.0

    def summary(self) -> dict[str, Any]:
        median = statistics.median(self.end_to_end_s)
        stages = {s: statistics.median(v) for s, v in self.stages_s.items()}
        return {"end_to_end_s": median, "end_to_end_min_s": min(self.end_to_end_s), "fps": 1.0 / median,
                "stages_s": stages, "runs_end_to_end_s": self.end_to_end_s,
                "runs_stages_s": self.stages_s, "peak_rss_mb": self.peak_rss_mb, "peak_cuda_mb": self.peak_cuda_mb}


def timed(fn: Callable[[], T], device: torch.device, runs: Runs) -> T:
    """Run ``fn`` once, append its wall time to ``runs`` and raise its memory peaks (reset just before the call)."""
    reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    start = perf_counter()
    result = fn()
    synchronize(device)
    runs.end_to_end_s.append(perf_counter() - start)
    runs.peak_rss_mb = max(runs.peak_rss_mb, peak_rss_mb())
    if device.type == "cuda":
        runs.peak_cuda_mb = max(runs.peak_cuda_mb, torch.cuda.max_memory_allocated(device) / 2**20)
    return result


# --- the forward, stage by stage -------------------------------------------------------------------------------
@torch.inference_mode()
def staged_forward(model: MLLMSegModel, pixels: torch.Tensor, ids: torch.Tensor, official: bool,
                   clock: LapClock) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask logits n x S x S, decided token id per answer slot) for one prompt, timing each stage on ``clock``.

    ``official`` adds back the official code's costs: the LLM over every position of the prompt on every call (ours
    stops at the last slot and, on the CPU, reuses the opening text's state), the vocabulary head over all T positions,
    and the image-only part of the decoder (``encode_image``) once per expression instead of once per frame.
    """
    tokens = model.config.tokens  # one prompt: batch index 0 below
    # extract_image_features runs the ViT and then pixel shuffle + mlp1; a hook splits its time at the ViT's end.
    hook = model.vision_model.register_forward_hook(lambda *_: clock.lap("vit"))
    try:
        vit_features, image_embeds = model.extract_image_features(pixels)
    finally:
        hook.remove()
    clock.lap("projector")
    if official:
        hidden = model.run_language_model(model.embed_inputs(ids, image_embeds))  # 1 x T x H, every position
    else:
        hidden, _ = model.run_prompt(ids, image_embeds)  # 1 x L x H: what forward_ids runs (opening reused on CPU)
    clock.lap("llm")
    slots = tokens.is_answer_slot(ids[0]).nonzero(as_tuple=True)[0]
    if official:
        # transformers 4.37's CausalLM heads return float32 logits for every position: 1 x T x V.
        decided = model.language_model.lm_head(hidden).float()[0, slots - 1].argmax(-1)
    else:
        decided = model.decision_logits_at(hidden[0, slots - 1]).argmax(-1)
    clock.lap("head")
    image_states = model.image_states_from_hidden(ids, hidden)
    seg_states = hidden[0, slots[ids[0, slots] == tokens.seg] - 1]  # n x H, the state before each [SEG]
    image_index = torch.zeros(len(seg_states), dtype=torch.long, device=ids.device)
    encode = model.res_decoder.encode_image
    if official:  # one query at a time, the image part recomputed for each
        masks = torch.cat([model.decode_masks(encode(vit_features, image_states), seg_states[i:i + 1], image_index[i:i + 1])
                           for i in range(len(seg_states))])
    else:
        masks = model.decode_masks(encode(vit_features, image_states), seg_states, image_index)
    clock.lap("decoder")
    return masks, decided


def llm_positions(model: MLLMSegModel, ids: torch.Tensor) -> int:
    with torch.inference_mode():
        return model.positions_read(ids) - model.reusable_opening_length(ids)


@contextmanager
def published_attention(model: MLLMSegModel) -> Iterator[None]:
    """The attention kernels the official code runs without flash-attn: InternViT's explicit softmax attention and
    transformers' "eager" LLM attention (same maths as ours, more memory traffic)."""

    def explicit(self: VisionAttention, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        weights = ((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)  # B x heads x N x N
        return self.proj((weights @ v).transpose(1, 2).reshape(batch, tokens, width))

    llm_config = model.language_model.model.config
    saved = llm_config._attn_implementation
    VisionAttention.forward, original = explicit, VisionAttention.forward
    llm_config._attn_implementation = "eager"
    try:
        yield
    finally:
        VisionAttention.forward = original
        llm_config._attn_implementation = saved


def bench_case(model: MLLMSegModel, expressions: int, device: torch.device, warmup: int, repeats: int) -> dict[str, Any]:
    ids = make_prompt(model.config, expressions, device)
    size = model.config.image_size
    pixels = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)
    runs = {"ours": Runs(), "official": Runs(), "published": Runs()}

    def staged(path: str) -> tuple[torch.Tensor, torch.Tensor]:
        # Stage boundaries exist only in eager passes: a CUDA graph replays a whole stage at once, hooks and all
        # skipped. So every staged run is eager; "ours" end to end (forward_ids) replays graphs where the model would.
        clock = LapClock(device)
        graphs, model.use_cuda_graphs = model.use_cuda_graphs, False
        try:
            result = staged_forward(model, pixels, ids, path != "ours", clock)
        finally:
            model.use_cuda_graphs = graphs
        for stage, seconds in clock.laps.items():
            runs[path].stages_s[stage].append(seconds)
        return result

    for _ in range(warmup):
        model.forward_ids(pixels, ids)
        staged_forward(model, pixels, ids, True, LapClock(device))
    for _ in range(repeats):
        # Paths interleaved within each repeat so that drift in the host's speed hits both alike. "ours" end to end is
        # forward_ids itself; its stage split comes from a staged run. "official" end to end is its staged run (on CUDA
        # that includes five extra synchronisations, microseconds).
        out = timed(lambda: model.forward_ids(pixels, ids), device, runs["ours"])
        staged("ours")
        official_masks, official_decided = timed(lambda: staged("official"), device, runs["official"])
        with published_attention(model):
            timed(lambda: staged("published"), device, runs["published"])
    official_decisions = ["REJ" if int(i) == model.config.tokens.rej else "SEG" for i in official_decided]
    ours, official, published = runs["ours"].summary(), runs["official"].summary(), runs["published"].summary()
    return {
        "expressions": expressions, "tokens": ids.shape[1], "ours": ours, "official": official,
        # LLM positions each path runs per call (ours: from the first image token, when the opening is reused, to the
        # last slot)
        "llm_tokens": {"ours": llm_positions(model, ids), "official": ids.shape[1]},
        "ratio_end_to_end": ours["end_to_end_s"] / official["end_to_end_s"],
        # "published": the official path with the official code's attention kernels as well
        "published_end_to_end_s": published["end_to_end_s"],
        "ratio_vs_published": ours["end_to_end_s"] / published["end_to_end_s"],
        # Both paths compute the same masks; a difference beyond rounding would mean the comparison is unfair.
        "max_mask_abs_diff": float((out.mask_logits[0] - official_masks).abs().max()),
        "decisions_match": out.decisions[0] == official_decisions,
        "load_average_1min": os.getloadavg()[0],  # well above --threads: other work on the host skewed the numbers
    }


# --- reporting -------------------------------------------------------------------------------------------------
def parameter_counts(model: MLLMSegModel) -> dict[str, int]:
    parts = {"vit": model.vision_model, "projector": model.mlp1, "llm": model.language_model, "decoder": model.res_decoder}
    counts = {name: sum(p.numel() for p in part.parameters()) for name, part in parts.items()}
    return {**counts, "total": sum(counts.values())}


def machine_info(device: torch.device) -> dict[str, Any]:
    cpu = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
    info = {"cpu": cpu.group(1) if cpu else platform.processor(), "logical_cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
            "device": str(device), "peak_rss_resettable": reset_peak_rss()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def print_case(shape: str, dtype: str, case: dict[str, Any], cuda: bool) -> None:
    for path in ("ours", "official"):
        r = case[path]  # "published" only differs in its attention kernels; its end-to-end time is printed below
        stages = "".join(f"{r['stages_s'][s] * 1e3:>10.1f}" for s in STAGES)
        memory = f"{r['peak_rss_mb']:>9.0f}" + (f"{r['peak_cuda_mb']:>9.0f}" if cuda else "")
        print(f"{shape:<7}{dtype:<6}{case['expressions']:>2}{case['tokens']:>5}  {path:<9}{stages}"
              f"{r['end_to_end_s'] * 1e3:>10.1f}{r['fps']:>7.2f}{memory}")
    print(f"{'':<22}official as published (explicit ViT attention, eager LLM attention): "
          f"{case['published_end_to_end_s'] * 1e3:.1f} ms; ours/published {case['ratio_vs_published']:.2f}")
    print(f"{'':<22}ours/official end-to-end {case['ratio_end_to_end']:.2f}   "
          f"max |mask diff| {case['max_mask_abs_diff']:.1e}   decisions match: {case['decisions_match']}   "
          f"1-min load {case['load_average_1min']:.1f} (this run's {torch.get_num_threads()} threads included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", help=f"comma list of {sorted(SHAPES)} (default: tiny,1b; 8b too on cuda)")
    parser.add_argument("--dtypes", default="fp32,bf16", help=f"comma list of {sorted(DTYPES)}")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--repeats", type=int, help="timed runs per case, median reported (default 3 on cpu, 10 on cuda)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per case and path")
    parser.add_argument("--expressions", default="1,4", help="comma list of expression counts per prompt")
    parser.add_argument("--no-cuda-graphs", action="store_true", help="on a GPU, ours end to end without CUDA graphs")
    parser.add_argument("--json", type=Path, help="write every number and the machine info here")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    shapes = (args.shapes or ("tiny,1b,8b" if device.type == "cuda" else "tiny,1b")).split(",")
    unknown = [s for s in shapes if s not in SHAPES] + [d for d in args.dtypes.split(",") if d not in DTYPES]
    if unknown:
        parser.error(f"unknown shape/dtype {unknown}; shapes {sorted(SHAPES)}, dtypes {sorted(DTYPES)}")
    if device.type == "cpu" and GPU_ONLY_SHAPES & set(shapes):
        print(f"note: {sorted(GPU_ONLY_SHAPES & set(shapes))} on CPU was asked for; expect minutes per forward", file=sys.stderr)
    repeats = args.repeats or (10 if device.type == "cuda" else 3)
    expression_counts = [int(k) for k in args.expressions.split(",")]
    machine = machine_info(device)

    print(f"{machine['cpu']}, {machine['usable_cores']} cores, {args.threads} threads, torch {machine['torch']}"
          + (f", {machine['gpu']}" if "gpu" in machine else "") + f"; median of {repeats} runs after {args.warmup} warm-up")
    rss_note = "process-wide peak RSS (weights included), " + (
        "reset before each timed run" if machine["peak_rss_resettable"] else "process lifetime peak (reset unsupported)")
    print(f"times in ms; RSS MB: {rss_note}" + ("; CUDA MB: torch.cuda.max_memory_allocated" if device.type == "cuda" else ""))
    print(f"{'shape':<7}{'dtype':<6}{'k':>2}{'T':>5}  {'path':<9}" + "".join(f"{s:>10}" for s in STAGES)
          + f"{'total':>10}{'FPS':>7}{'RSS MB':>9}" + (f"{'CUDA MB':>9}" if device.type == "cuda" else ""))
    settings = {**vars(args), "json": str(args.json), "repeats": repeats, "shapes": shapes, "prompt_tokens": PROMPT_TOKENS}
    results: list[dict[str, Any]] = []
    for shape in shapes:
        for dtype_name in args.dtypes.split(","):
            model = build_model(shape, DTYPES[dtype_name], device)  # built once, reused for every case
            model.use_cuda_graphs = False if args.no_cuda_graphs else None
            params = parameter_counts(model)
            print(f"{shape} {dtype_name}: {params['total'] / 1e6:.1f}M parameters ("
                  + ", ".join(f"{name} {n / 1e6:.1f}M" for name, n in params.items() if name != "total") + ")")
            for k in expression_counts:
                case = bench_case(model, k, device, args.warmup, repeats)
                print_case(shape, dtype_name, case, device.type == "cuda")
                results.append({"shape": shape, "dtype": dtype_name, "parameters": params, **case})
                if args.json:  # rewritten after every case: a long run that dies keeps what it measured
                    report = {"machine": machine, "settings": settings, "rss_note": rss_note, "results": results}
                    args.json.write_text(json.dumps(report, indent=1))
            del model  # before the next build: two 1b/8b models at once may not fit
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
