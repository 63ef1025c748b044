"""``mllmseg-ros``: the command line. ``segment`` runs a checkpoint on an image; ``demo`` shows the pipeline."""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Sequence

from .cli_args import COUNT, FRACTION, NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, UserError, check_device, make_out_dir

DTYPES = ("float32", "bfloat16", "float16")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "target"


def results_as_dicts(results) -> list[dict]:
    return [
        {
            "expression": r.expression,
            "found": r.found,
            "decision": r.decision,
            "confidence": round(r.confidence, 4),  # P(target found), for found and not-found alike
            "seg_probability": round(r.seg_probability, 4),
            "area": r.area,
            "bbox": list(r.bbox) if r.bbox else None,
            "centroid": [round(c, 2) for c in r.centroid] if r.centroid else None,
        }
        for r in results
    ]


def format_table(results) -> str:
    rows = [("expression", "found", "P(found)", "area", "bbox (x,y,w,h)", "centroid (x,y)")]
    for r in results:
        bbox = ",".join(map(str, r.bbox)) if r.bbox else "-"
        centroid = f"{r.centroid[0]:.1f},{r.centroid[1]:.1f}" if r.centroid else "-"
        rows.append((r.expression, "yes" if r.found else "no", f"{r.confidence:.3f}", str(r.area), bbox, centroid))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def write_outputs(out_dir: Path, image_rgb, results) -> list[Path]:
    import cv2

    from ..engine import draw_overlay

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for index, result in enumerate(results):
        path = out_dir / f"mask_{index}_{_slug(result.expression)}.png"
        cv2.imwrite(str(path), result.mask.astype("uint8") * 255)
        written.append(path)
    overlay = out_dir / "overlay.png"
    cv2.imwrite(str(overlay), cv2.cvtColor(draw_overlay(image_rgb, results), cv2.COLOR_RGB2BGR))
    return written + [overlay]


def note(line: str) -> None:
    """A line for the user beside the results (on stderr, so --json output stays parseable)."""
    print(f"mllmseg-ros: note: {line}", file=sys.stderr)


def cmd_segment(args: argparse.Namespace) -> int:
    import cv2
    import torch

    from ..engine import Segmenter, SegmenterOptions

    model_dir = Path(args.model)
    if not model_dir.is_dir():
        raise UserError(f"model folder not found: {model_dir}")
    image_bgr = cv2.imread(str(args.image), cv2.IMREAD_COLOR)
    if image_bgr is None:
        raise UserError(f"cannot read image: {args.image}")
    check_device(args.device)
    out_dir = make_out_dir(args.out) if args.out else None
    options = SegmenterOptions(threshold=args.threshold, centroid_of_largest_component=args.largest_component)
    segmenter = Segmenter.from_pretrained(
        model_dir, device=args.device, dtype=getattr(torch, args.dtype), threads=args.threads,
        allow_pickle=args.allow_pickle, options=options, compile=args.compile, quantization=args.quantization,
        cuda_graphs=not args.no_cuda_graphs, announce=note,
    )
    image_rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
    expressions = segmenter.expressions_from_command("; ".join(args.expressions)) if args.command else args.expressions
    results = segmenter.segment(image_rgb, expressions)
    written = write_outputs(out_dir, image_rgb, results) if out_dir else []
    if args.json:
        print(json.dumps({"image": str(args.image), "results": results_as_dicts(results), "files": [str(p) for p in written]}, indent=2))
    else:
        print(format_table(results))
        for path in written:
            print(f"wrote {path}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    """pytorch_model.bin (pickle) checkpoint -> a safetensors copy that loads without --allow-pickle."""
    import shutil

    from safetensors.torch import save_file

    from ..model.loading import read_state_dict

    source, target = Path(args.source), Path(args.target)
    if not source.is_dir():
        raise UserError(f"checkpoint folder not found: {source}")
    if not args.allow_pickle:
        raise UserError("reading pickle weights can run code from the file; pass --allow-pickle if you trust it")
    state = read_state_dict(source, allow_pickle=True)
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file() and not item.name.startswith("pytorch_model"):
            shutil.copy(item, target / item.name)
    save_file({k: v.contiguous() for k, v in state.items()}, str(target / "model.safetensors"), metadata={"format": "pt"})
    print(f"wrote {target / 'model.safetensors'} ({len(state)} tensors)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DEMO_MODEL, run_demo

    return run_demo(make_out_dir(args.out), scenes=args.scenes, model_dir=Path(args.model or DEMO_MODEL))


def cmd_play(args: argparse.Namespace) -> int:
    from .bags import parse_remap, play, ros_session

    remap = parse_remap(args.remap)
    try:
        with ros_session() as stop:
            count = play(args.bag, rate=args.rate, loop=args.loop, remap=remap, topics=args.topics,
                         qos_reliability="best_effort" if args.best_effort else "reliable",
                         wait_for_subscribers=args.wait_for_subscribers, stop_event=stop, clock_hz=args.clock or 0.0)
    except KeyboardInterrupt:
        print("mllmseg-ros: play interrupted", file=sys.stderr)
        return 130
    print(f"published {count} messages from {args.bag}")
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from .bags import record, ros_session

    topics = dict(args.topic)
    try:
        with ros_session() as stop:
            count = record(args.out, topics, duration=args.duration, max_messages=args.max_messages,
                           storage=args.storage, qos_reliability=args.reliability, stop_event=stop)
    except KeyboardInterrupt:  # a second Ctrl-C; the bag is closed all the same
        print(f"mllmseg-ros: record interrupted; bag closed: {args.out}", file=sys.stderr)
        return 130
    print(f"recorded {count} messages on {len(topics)} topics to {args.out}")
    return 0


def cmd_bag_eval(args: argparse.Namespace) -> int:
    from .bag_eval import evaluate_bag, format_scores
    from .bags import parse_remap, ros_session

    if not Path(args.model).is_dir():
        raise UserError(f"model folder not found: {args.model}")
    check_device(args.device)
    with ros_session():
        scores = evaluate_bag(args.bag, args.model, args.ground_truth, remap=parse_remap(args.remap), rate=args.rate,
                              node_parameters={"device": args.device, "dtype": args.dtype, "threshold": args.threshold})
    rows = [entry.row() for entry in scores]
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    print(format_scores(scores))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from ..engine import Segmenter
    from ..data.refer import load_split
    from .refer_eval import evaluate

    if not Path(args.model).is_dir():
        raise UserError(f"model folder not found: {args.model}")
    check_device(args.device)
    out = Path(args.out or f"eval_{args.dataset}_{args.split}.json")
    make_out_dir(out.parent)
    samples, annotations = load_split(args.data, args.dataset, args.split)
    if args.limit:
        samples = samples[: args.limit]
    segmenter = Segmenter.from_pretrained(args.model, device=args.device, dtype=getattr(torch, args.dtype), threads=args.threads,
                                          announce=note)
    modes = ["image", "expression"] if args.mode == "both" else [args.mode]
    report = {"model": str(args.model), "dataset": args.dataset, "split": args.split, "results": {}}
    for mode in modes:
        progress = out.with_suffix(f".{mode}.progress.jsonl")
        metrics = evaluate(segmenter, samples, annotations, per_expression=mode == "expression", progress_file=progress)
        report["results"][mode] = metrics.summary()
        summary = report["results"][mode]
        print(f"{args.dataset} {args.split} ({mode} mode): cIoU {100 * summary['cIoU']:.2f}  gIoU {100 * summary['gIoU']:.2f}  "
              f"[SEG]/[REJ] acc {100 * summary['seg_rej_accuracy']:.2f}  ({summary['expressions']} expressions)")
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ..training import TrainConfig, train

    if args.device:
        check_device(args.device)
    overrides = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__ and v is not None}
    cfg = TrainConfig.from_file(args.config, **overrides) if args.config else TrainConfig.from_dict(overrides)
    folder = train(cfg)
    print(f"wrote {folder}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mllmseg-ros", description="Language-to-mask segmentation with MLLMSeg.")
    sub = parser.add_subparsers(dest="command_name", required=True)

    seg = sub.add_parser("segment", help="segment the objects named by expressions in one image")
    seg.add_argument("--model", required=True, help="checkpoint folder (config.json, *.safetensors, tokenizer files)")
    seg.add_argument("image", help="image file (any format OpenCV reads)")
    seg.add_argument("expressions", nargs="+", help='referring expressions, e.g. "the red cup"')
    seg.add_argument("--command", action="store_true", help="treat the text as a spoken command ('pick up the red cup')")
    seg.add_argument("--out", help="folder for mask PNGs and overlay.png")
    seg.add_argument("--json", action="store_true", help="print JSON instead of a table")
    seg.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    seg.add_argument("--dtype", default="float32", choices=DTYPES)
    seg.add_argument("--threads", type=NON_NEGATIVE_INT, default=None, help="CPU threads for torch")
    seg.add_argument("--threshold", type=FRACTION, default=0.5, help="mask threshold on the probability map")
    seg.add_argument("--largest-component", action="store_true", help="centroid of the largest connected component")
    seg.add_argument("--quantization", choices=["int8", "bnb-int8", "bnb-nf4"],
                     help="8/4-bit ViT and LLM weights: int8 (torch, CPU float32) or bitsandbytes int8/nf4")
    seg.add_argument("--compile", action="store_true", help="torch.compile the ViT, LLM and decoder (slow first calls)")
    seg.add_argument("--no-cuda-graphs", action="store_true",
                     help="on a GPU, launch each kernel from Python instead of replaying CUDA graphs (slower)")
    seg.add_argument("--allow-pickle", action="store_true", help="allow pytorch_model.bin (pickle) weights")
    seg.set_defaults(handler=cmd_segment)

    convert = sub.add_parser("convert", help="convert a pytorch_model.bin checkpoint to safetensors")
    convert.add_argument("source", help="checkpoint folder with pytorch_model.bin (or its shard index)")
    convert.add_argument("target", help="new folder (config and tokenizer files are copied)")
    convert.add_argument("--allow-pickle", action="store_true", help="required: confirms you trust the pickle file")
    convert.set_defaults(handler=cmd_convert)

    demo = sub.add_parser("demo", help="the node with the trained demo model on a replayed bag of synthetic scenes")
    demo.add_argument("--out", default="out/demo", help="output folder")
    demo.add_argument("--scenes", type=COUNT, default=8, help="scenes in the generated bag")
    demo.add_argument("--model", help="checkpoint folder (default: the shipped demo model)")
    demo.set_defaults(handler=cmd_demo)

    play = sub.add_parser("play", help="publish a rosbag2 bag (.db3 or .mcap) with its timing, like ros2 bag play")
    play.add_argument("bag", help="rosbag2 folder (or one .db3/.mcap file)")
    play.add_argument("--rate", type=POSITIVE, default=1.0, help="speed factor (2 = twice as fast)")
    play.add_argument("--loop", action="store_true", help="start over at the end, until Ctrl-C")
    play.add_argument("--remap", nargs="+", default=[], metavar="FROM:=TO", help="publish bag topic FROM on TO")
    play.add_argument("--topics", nargs="+", help="play only these bag topics")
    play.add_argument("--best-effort", action="store_true", help="publish BEST_EFFORT instead of RELIABLE")
    play.add_argument("--clock", type=POSITIVE, nargs="?", const=40.0, metavar="HZ",
                      help="publish the bag time on /clock (default 40 Hz), for nodes run with use_sim_time")
    play.add_argument("--wait-for-subscribers", type=NON_NEGATIVE, default=0.0, metavar="S",
                      help="wait up to S seconds for a subscriber on every topic before playing")
    play.set_defaults(handler=cmd_play)

    rec = sub.add_parser("record", help="record topics to a new rosbag2 bag, like ros2 bag record")
    rec.add_argument("out", help="new bag folder (must not exist)")
    rec.add_argument("--topic", nargs=2, action="append", required=True, metavar=("TOPIC", "TYPE"),
                     help="topic and message type, e.g. /camera/image_raw sensor_msgs/msg/Image; repeatable")
    rec.add_argument("--duration", type=POSITIVE, metavar="S", help="stop after S seconds")
    rec.add_argument("--max-messages", type=COUNT, metavar="N", help="stop after N messages in all")
    rec.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    rec.add_argument("--reliability", choices=["auto", "reliable", "best_effort"], default="auto",
                     help="subscription QoS; auto matches each topic's publishers once one appears")
    rec.set_defaults(handler=cmd_record)

    bag_eval = sub.add_parser("bag-eval", help="replay a bag through the node and score it against ground truth")
    bag_eval.add_argument("bag", help="rosbag2 folder with images, commands and a ground-truth topic")
    bag_eval.add_argument("--model", required=True, help="checkpoint folder")
    bag_eval.add_argument("--ground-truth", default="/ground_truth", help="mllmseg_ros/msg/SegmentationArray topic")
    bag_eval.add_argument("--remap", nargs="+", default=[], metavar="FROM:=TO",
                          help="bag topic -> node input (image, depth, camera_info, command), e.g. /cam/rgb:=/image")
    bag_eval.add_argument("--rate", type=POSITIVE, default=1.0, help="replay speed factor")
    bag_eval.add_argument("--device", default="cpu")
    bag_eval.add_argument("--dtype", default="auto", choices=["auto", *DTYPES])
    bag_eval.add_argument("--threshold", type=FRACTION, default=0.5, help="mask threshold")
    bag_eval.add_argument("--json", help="write the per-target scores to this file")
    bag_eval.set_defaults(handler=cmd_bag_eval)

    ev = sub.add_parser("eval", help="RefCOCO/+/g and gRefCOCO metrics (cIoU, gIoU, [SEG]/[REJ] accuracy)")
    ev.add_argument("--model", required=True, help="checkpoint folder")
    ev.add_argument("--data", required=True, help="REFER root: <dataset>/refs(*).p, <dataset>/instances.json, images/mscoco/images/train2014")
    ev.add_argument("--dataset", required=True, choices=["refcoco", "refcoco+", "refcocog", "grefcoco"])
    ev.add_argument("--split", required=True, help="val, testA, testB, test ...")
    ev.add_argument("--mode", choices=["image", "expression", "both"], default="image",
                    help="image: all expressions of an image in one conversation (official); expression: one at a time")
    ev.add_argument("--out", help="results JSON (default eval_<dataset>_<split>.json); progress files beside it make reruns resume")
    ev.add_argument("--limit", type=COUNT, help="only the first N images")
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--dtype", default="float32", choices=DTYPES)
    ev.add_argument("--threads", type=NON_NEGATIVE_INT)
    ev.set_defaults(handler=cmd_eval)

    tr = sub.add_parser("train", help="train or fine-tune with MLLMSeg's objective (see docs/training.md)")
    tr.add_argument("--config", help="YAML or JSON file of TrainConfig options; flags below override it")
    tr.add_argument("--out", help="output folder (checkpoint-last/ for resuming, model/ at the end)")
    tr.add_argument("--base-model", dest="base_model", help="checkpoint to fine-tune (default: a new small model)")
    tr.add_argument("--data", help="synthetic | a folder with samples.jsonl | refer:ROOT:DATASET")
    tr.add_argument("--steps", type=COUNT)
    tr.add_argument("--batch-size", dest="batch_size", type=COUNT)
    tr.add_argument("--lr", type=POSITIVE)
    tr.add_argument("--llm", choices=["full", "lora", "frozen"])
    tr.add_argument("--freeze-vit", dest="freeze_vit", action="store_true", default=None)
    tr.add_argument("--freeze-projector", dest="freeze_projector", action="store_true", default=None)
    tr.add_argument("--bf16", action="store_true", default=None)
    tr.add_argument("--gradient-checkpointing", dest="gradient_checkpointing", action="store_true", default=None)
    tr.add_argument("--device")
    tr.add_argument("--threads", type=NON_NEGATIVE_INT)
    tr.add_argument("--data-workers", dest="data_workers", type=NON_NEGATIVE_INT,
                    help="processes building the next batches while a step trains (same samples for any number)")
    tr.set_defaults(handler=cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (UserError, ValueError) as exc:
        print(f"mllmseg-ros: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a model/checkpoint problem: one line, not a traceback
        from ..model import CheckpointError

        if isinstance(exc, CheckpointError):
            print(f"mllmseg-ros: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
