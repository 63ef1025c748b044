#!/usr/bin/env python3
"""Gather the parts that benchmarks/gpu_run.sh wrote into one JSON report and print the headline table.

    python3 benchmarks/gpu_report.py out/gpu/parts out/gpu/gpu_report.json
"""
from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

# Issue 6: one expression, bf16, on an H100.
FPS_TARGETS = {"1b": 30.0, "8b": 8.0}


def load_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # that part failed or timed out; its exit code says which


def test_summary(path: Path) -> dict[str, Any] | None:
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    failed = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    ran_on_cuda = [case.get("name") for case in suite.iter("testcase")
                   if ("cuda" in case.get("name", "") or "gpu" in case.get("name", "")) and case.find("skipped") is None]
    return {**counts, "failed": failed, "cuda_tests_run": ran_on_cuda}


def engine_cases(part: dict[str, Any]) -> list[dict[str, Any]]:
    """bench_engine.py's cases: a list in its reports, one case in the reports of older checkouts (--shape)."""
    if "cases" in part:
        return part["cases"]
    settings = part["settings"]
    return [{"shape": settings["shape"], "cuda_graphs": not settings.get("no_cuda_graphs"), **part}]


def headline(parts: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    model = parts.get("bench_model") or {}
    for case in model.get("results", []):
        rows.append({"what": f"model forward {case['shape']} {case['dtype']}, {case['expressions']} expression(s)",
                     "fps": case["ours"]["fps"], "official_style_fps": case["official"]["fps"],
                     "ours_over_official_time": case["ratio_end_to_end"],
                     "target_fps": FPS_TARGETS.get(case["shape"]) if case["expressions"] == 1 else None})
    for name, part in parts.items():
        if not part or not (name.startswith("bench_engine") or name.startswith(("before_", "after_"))):
            continue
        for case in engine_cases(part):
            label = (f"{name}: engine {case['shape']} {part['settings']['dtype']}"
                     + ("" if case["cuda_graphs"] else " no CUDA graphs"))
            results = case["results"]
            rows.append({"what": f"{label}, new frame, 1 expression", "fps": results["fps 1 expression"],
                         "target_fps": FPS_TARGETS.get(case["shape"])})
            rows.append({"what": f"{label}, new frame, 4 expressions", "fps": results["fps 4 expressions"]})
            rows.append({"what": f"{label}, another expression on the same frame", "fps": 1.0 / results["warm s"]})
    for name, part in parts.items():
        if part and name.startswith("stream"):
            results = part["results"]
            rows.append({"what": f"{name}: node, {part['settings']['size']} at {part['settings']['fps']:g} fps, "
                                 f"latency p50 {results['latency_ms_p50']:.1f} / p95 {results['latency_ms_p95']:.1f} ms",
                         "fps": results["answers_per_s"]})
    return rows


def main() -> None:
    parts_dir, report_path = Path(sys.argv[1]), Path(sys.argv[2])
    parts: dict[str, Any] = {p.stem: load_json(p) for p in sorted(parts_dir.glob("*.json"))}
    exit_codes = {}
    if (parts_dir / "exit_codes.txt").is_file():
        for line in (parts_dir / "exit_codes.txt").read_text().splitlines():
            name, _, code = line.partition(": exit ")
            exit_codes[name] = int(code)
    machine = next((p["machine"] for p in parts.values() if p and "machine" in p), {})
    tests = {p.stem: test_summary(p) for p in sorted(parts_dir.glob("tests*.xml"))}
    report = {"machine": machine, "exit_codes": exit_codes, "tests": tests,
              "headline": headline(parts), "parts": parts}
    report_path.write_text(json.dumps(report, indent=1))

    print(f"\n{machine.get('gpu', 'no GPU recorded')}, torch {machine.get('torch')}, "
          f"transformers {machine.get('transformers')}; exit codes {exit_codes}")
    for row in report["headline"]:
        target = row.get("target_fps")
        verdict = "" if target is None else f"  target >= {target:.0f}: {'met' if row['fps'] >= target else 'NOT met'}"
        official = (f"  (official-style {row['official_style_fps']:.1f} FPS, time ratio {row['ours_over_official_time']:.2f})"
                    if "official_style_fps" in row else "")
        print(f"  {row['what']:<58} {row['fps']:8.1f} FPS{official}{verdict}")
    for name, summary in tests.items():
        if summary:
            print(f"  {name}: {summary['tests']} run, {summary['failures']} failures, {summary['errors']} errors, "
                  f"{summary['skipped']} skipped; on CUDA: {summary['cuda_tests_run']}; failed: {summary['failed']}")


if __name__ == "__main__":
    main()
