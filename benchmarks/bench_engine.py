#!/usr/bin/env python3
"""Engine speed: encode a frame once, ask many questions.

Measured in one run on random-weight models of released shapes (default: InternVL2.5-1B) through the real
``Segmenter`` (prompt building, tokenisation, per-frame cache, post-processing), with per-stage latency (preprocess,
ViT, LLM, decoder image stages, LLM suffix, decoder per-query stages, post-process), FPS, peak memory and the
decoder's parameter count next to SAM ViT-H's:
  cold      - a new frame and one expression (ViT + LLM over the whole prompt + decoder)
  warm      - another expression on the same frame (LLM over the question/answer suffix + per-query decoder)
  cold x4   - a new frame and four expressions in one call (one conversation)
  post 720p - host post-processing of one 448 x 448 map into a 1280 x 720 mask, box and centroid
The tokenizer is a small one built here (the model's ids are random anyway); prompt lengths are printed. On a GPU,
``--graphs on,off`` measures the same model with and without CUDA graphs, one after the other.

    .venv/bin/python benchmarks/bench_engine.py --shapes 1b --threads 2 --repeats 3 --json out.json
    python3 benchmarks/bench_engine.py --shapes 1b,8b --dtype bf16 --device cuda --graphs on,off --json out.json
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_model import DTYPES, SHAPES, build_config, build_model, machine_info  # noqa: E402

from mllmseg_ros.engine import Segmenter  # noqa: E402
from mllmseg_ros.model.compilation import compile_stages  # noqa: E402
from mllmseg_ros.engine.postprocess import mask_geometry, resize_probability  # noqa: E402
from mllmseg_ros.engine.prompt import HFChatTokenizer  # noqa: E402
from mllmseg_ros.model import SpecialTokens  # noqa: E402
from mllmseg_ros.training.checkpoint_builder import build_tokenizer  # noqa: E402

EXPRESSIONS = ["the red cup", "the blue bowl on the left", "the green box", "the ball next to the plate"]
SAM_VIT_H_PARAMETERS = 632_000_000  # the mask-decoding cost MLLMSeg avoids (paper: a ~34M decoder instead of SAM)
TARGETS = {"warm / cold": 0.10, "cold x4 / cold": 1.30, "post 720p ms": 10.0}


def build_segmenter(
    shape: str, dtype: torch.dtype, device: str, folder: Path, compile: bool = False, cuda_graphs: bool = True
) -> Segmenter:
    ids = build_tokenizer(folder, EXPRESSIONS)
    config = build_config(shape)
    config.tokens = SpecialTokens(ids["<IMG_CONTEXT>"], ids["[SEG]"], ids["[REJ]"], ids["<img>"], ids["</img>"])
    model = build_model(shape, dtype, torch.device(device), config)
    model.use_cuda_graphs = None if cuda_graphs else False
    if compile:
        compile_stages(model)
    return Segmenter(model, HFChatTokenizer(folder))


def median_time(fn, repeats: int, device: str, stages: dict | None = None, seg: Segmenter | None = None) -> float:
    """Median wall time of ``fn``; with ``stages``, also the median of each engine stage (``seg.last_timings``)."""
    times, laps = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        if seg is not None:
            laps.append(dict(seg.last_timings))
    if stages is not None and laps:
        stages.update({k: statistics.median(lap.get(k, 0.0) for lap in laps) for k in laps[0]})
    return statistics.median(times)


def peak_memory(device: str) -> dict:
    with open("/proc/self/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    memory = {"peak_rss_mb": rss}
    if device.startswith("cuda"):
        memory["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return memory


def measure(seg: Segmenter, device: str, repeats: int, warmup: int, seed: int = 0) -> dict:
    """Every measurement of one engine (module docstring)."""
    rng = np.random.default_rng(seed)
    # New frames made before any timing (drawing a random 1280 x 720 frame takes ~10 ms, as long as a 1B GPU forward's
    # LLM); eight are cycled, so every timed call sees another frame than the call before.
    pool = [rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8) for _ in range(8)]
    frames = itertools.cycle(pool)
    first_call = {}
    for n in (1, 4):  # the very first call of each prompt shape: lazy initialisation, graph capture, compilation
        start = time.perf_counter()
        seg.segment(next(frames), EXPRESSIONS[:n])
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        first_call[f"first call x{n} s"] = time.perf_counter() - start
    for _ in range(warmup):  # allocations, one-time init, compilation of both prompt shapes
        seg.segment(next(frames), EXPRESSIONS[:1])
        seg.segment(next(frames), EXPRESSIONS)
    fixed = next(frames)
    seg.segment(fixed, EXPRESSIONS[:1])
    # End-to-end times let the host run ahead of the GPU as the node does; the stage times come from separate calls
    # that synchronise at every stage boundary (which costs a little).
    results = {
        "cold s": median_time(lambda: seg.segment(next(frames), EXPRESSIONS[:1]), repeats, device),
        "warm s": median_time(lambda: seg.segment(fixed, EXPRESSIONS[1:2]), repeats, device),
        "cold x4 s": median_time(lambda: seg.segment(next(frames), EXPRESSIONS), repeats, device),
        "warm x4 s": median_time(lambda: seg.segment(fixed, EXPRESSIONS), repeats, device),
        "uncached s": median_time(lambda: seg.segment(fixed, EXPRESSIONS[:1], cache=False), repeats, device),
    }
    seg.synchronize_timings = True
    stages_cold, stages_cold4 = {}, {}
    median_time(lambda: seg.segment(next(frames), EXPRESSIONS[:1]), repeats, device, stages_cold, seg)
    median_time(lambda: seg.segment(next(frames), EXPRESSIONS), repeats, device, stages_cold4, seg)
    seg.synchronize_timings = False
    results.update(first_call)
    square = rng.random((448, 448), dtype=np.float32)

    def postprocess() -> None:
        mask_geometry(resize_probability(square, 720, 1280) > 0.5)

    results["post 720p ms"] = 1e3 * median_time(postprocess, 50, "cpu")
    results["warm / cold"] = results["warm s"] / results["cold s"]
    results["cold x4 / cold"] = results["cold x4 s"] / results["cold s"]
    results["fps 1 expression"] = 1 / results["cold s"]
    results["fps 4 expressions"] = 1 / results["cold x4 s"]
    return {"results": results, "stages_ms": {"cold_1": stages_cold, "cold_4": stages_cold4},
            "cuda_graph_captures": seg.model.cuda_graph_captures,
            "prompt_tokens": {n: int(seg.prompt_ids(EXPRESSIONS[:n]).shape[1]) for n in (1, 4)}}


def print_case(shape: str, args: argparse.Namespace, graphs: bool, case: dict, memory: dict, decoder_parameters: int) -> None:
    device = args.device
    graph_text = f", CUDA graphs ({case['cuda_graph_captures']} captured)" if graphs and device.startswith("cuda") else ""
    print(f"shape {shape}, {args.dtype}, {device}{', compiled' if args.compile else ''}{graph_text}, {args.threads} threads; "
          f"prompt tokens {case['prompt_tokens']}" + (f"; GPU {torch.cuda.get_device_name()}" if device.startswith("cuda") else ""))
    print(f"  decoder parameters {decoder_parameters / 1e6:.1f}M (SAM ViT-H: {SAM_VIT_H_PARAMETERS / 1e6:.0f}M); "
          + ", ".join(f"{k} {v:.0f}" for k, v in memory.items()))
    for label, key in (("cold, 1 expression", "cold_1"), ("cold, 4 expressions", "cold_4")):
        stages = case["stages_ms"][key]
        print(f"  stages ms ({label}): " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items() if k not in ("encode", "query")))
    for name, value in case["results"].items():
        target = TARGETS.get(name)
        verdict = "" if target is None else f"  (target <= {target}: {'met' if value <= target else 'NOT met'})"
        print(f"  {name:17} {value:9.3f}{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="1b", help=f"comma list of {sorted(SHAPES)}")
    parser.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="torch.compile the ViT, LLM and decoder (Segmenter option)")
    parser.add_argument("--graphs", default="on", help="on a GPU: 'on', 'off' (kernels launched one by one) or 'on,off'")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls before timing (compile needs a few)")
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    graph_modes = [mode == "on" for mode in args.graphs.split(",")]
    cases = []
    for shape in args.shapes.split(","):
        with tempfile.TemporaryDirectory() as folder:
            seg = build_segmenter(shape, DTYPES[args.dtype], args.device, Path(folder), args.compile)
            decoder_parameters = sum(p.numel() for p in seg.model.res_decoder.parameters())
            for graphs in graph_modes:
                seg.model.use_cuda_graphs = None if graphs else False
                if args.device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()
                case = measure(seg, args.device, args.repeats, args.warmup)
                memory = peak_memory(args.device)
                print_case(shape, args, graphs, case, memory, decoder_parameters)
                cases.append({"shape": shape, "cuda_graphs": graphs, **case, "memory": memory,
                              "decoder_parameters": decoder_parameters})
            del seg
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
    if args.json:
        report = {"settings": vars(args), "machine": machine_info(torch.device(args.device)), "targets": TARGETS,
                  "sam_vit_h_parameters": SAM_VIT_H_PARAMETERS, "cases": cases}
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
