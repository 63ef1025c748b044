"""Mutation testing of the modules whose mistakes reach a planner or a motor (docs/testing.md), one module at a time.

Each target runs mutmut (3.x, forkserver isolation: the parent never imports torch or rclpy before forking) in a
scratch copy of the checkout (or of a git revision, ``--rev``), with only the tests that cover the module, and writes
``out/mutation/<target>/report.json`` and ``report.md``: every mutant's status and the diff of each one that
survived. ``scripts/mutation_equivalent.tsv`` names the survivors judged equivalent (no behaviour can tell them
apart) or accepted (a reason is given); the score is killed / (mutants - equivalent).

A scratch copy, not the checkout: mutmut writes its ``mutants/`` tree and settings (a pyproject.toml section) there,
and each target needs its own test selection. Its tests import the mutated copy first (mutmut puts it at the front of
sys.path); the generated ROS interfaces still come from the venv (pkgutil.extend_path in mllmseg_ros/__init__.py).
Tests that start the node as a process are never selected: that process would import the checkout, not the mutant.

    scripts/mutation.sh [--rev REV] [--out DIR] [TARGET ...]     (no target: all of them, one after the other)
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "out" / "mutation"
EQUIVALENT_FILE = REPO / "scripts" / "mutation_equivalent.tsv"
COPIED = ("mllmseg_ros", "test", "config", "models")  # what the selected tests read
TARGET_SCORE = 0.9


@dataclass(frozen=True)
class Target:
    files: tuple[str, ...]  # source files mutated
    tests: tuple[str, ...]  # test files (or node ids) run against the mutants; missing ones are left out (--rev)
    functions: tuple[str, ...] = ()  # fnmatch patterns of the functions in scope (mutmut's names); () = all
    about: str = ""


def _names(module: str, *functions: str) -> tuple[str, ...]:
    """mutmut's mutant-name patterns for ``functions`` of ``module`` ("Class.method" or "function")."""
    patterns = []
    for function in functions:
        owner, _, name = function.rpartition(".")
        patterns.append(f"{module}.xǁ{owner}ǁ{name}__mutmut_*" if owner else f"{module}.x_{name}__mutmut_*")
    return tuple(patterns)


ENGINE = "mllmseg_ros.engine"
TARGETS: dict[str, Target] = {
    "depth": Target(("mllmseg_ros/engine/depth.py",), ("test/engine/test_depth.py",)),
    # Not test_segmenter.py: its tiny-model tests take about 100 s per surviving mutant; test_decision.py runs the
    # engine's post-processing and decision on chosen model outputs, on the host and the device path.
    "postprocess": Target(
        ("mllmseg_ros/engine/postprocess.py",),
        ("test/engine/test_postprocess.py", "test/engine/test_decision.py", "test/engine/test_mask_iou.py")),
    "segmenter": Target(
        ("mllmseg_ros/engine/segmenter.py",), ("test/engine/test_decision.py",),
        _names(f"{ENGINE}.segmenter", "Segmenter._answers", "Segmenter._result"),
        "the decision and the thresholding: _answers (mask = probability > threshold, [REJ] -> empty) and _result "
        "(found = [SEG] and a non-empty mask)"),
    "commands": Target(("mllmseg_ros/engine/commands.py",), ("test/engine/test_commands.py",)),
    "command_reader": Target(
        ("mllmseg_ros/engine/command_reader.py",), ("test/engine/test_commands.py",),
        _names(f"{ENGINE}.command_reader", "Reading.then", "SentenceReader.sentence", "SentenceReader.clause",
               "SentenceReader.after_stop", "SentenceReader.after_hold", "SentenceReader.after_negation",
               "SentenceReader.targets", "SentenceReader.target", "SentenceReader.expression"),
        "the decisions of a sentence's reading: stop, hold, negation, correction, targets, and what names no object "
        "(the phrase matching of command_grammar.py is not in scope)"),
    # test_qos.py runs real publishers and subscriptions; the node tests would add minutes per mutant and nothing more
    "qos": Target(("mllmseg_ros/ros/qos.py",), ("test/ros/test_qos.py",)),
    # The pairing is ros/frame_pairing.py's (no ROS, a fake clock): its tests and those of the stream's callbacks with
    # stand-in ports take seconds per mutant. The node tests that check the same through topics (test_node.py's depth
    # tests, test_node_tracking.py, test_node_slow_model.py, test_node_timing.py) stay in the suite, out of this
    # selection (about a minute per mutant).
    "camera_stream": Target(
        ("mllmseg_ros/ros/camera_stream.py", "mllmseg_ros/ros/frame_pairing.py"),
        ("test/ros/test_frame_pairing.py", "test/ros/test_camera_stream.py", "test/ros/test_buffers.py"),
        (*_names("mllmseg_ros.ros.camera_stream", "CameraStream._on_image", "CameraStream._on_depth",
                 "CameraStream._on_camera_info", "CameraStream.take_frame", "CameraStream.finish_frame",
                 "CameraStream.wait_for_depth_pair", "CameraStream.depth_problem", "CameraStream.unsubscribe"),
         "mllmseg_ros.ros.frame_pairing.*"),
        "what a frame is paired with: the frame and its depth and camera_info as they arrive, the hand-over to the "
        "model, the wait for a frame's own depth, a rejected frame or depth image (not the subscriptions' wiring: "
        "ros/qos.py's target covers the QoS choice)"),
    # On a camera stream with stand-in ports (no node): the depth node tests (test_node.py, test_node_depth.py,
    # test_node_remote.py) check the same through topics at about a minute per mutant.
    "depth_pairing": Target(("mllmseg_ros/ros/depth_pairing.py",),
                            ("test/ros/test_depth_pairing.py", "test/ros/test_camera_stream.py")),
    "buffers": Target(("mllmseg_ros/ros/buffers.py",), ("test/ros/test_buffers.py",)),
    "params": Target(("mllmseg_ros/ros/params.py",), ("test/ros/test_params.py", "test/ros/test_param_coercion.py")),
    "param_coercion": Target(("mllmseg_ros/ros/param_coercion.py",),
                             ("test/ros/test_param_coercion.py", "test/ros/test_params.py")),
    "conversion": Target(("mllmseg_ros/model/conversion.py",), ("test/model/test_conversion.py",
                                                                 "test/model/test_internlm2.py", "test/model/test_loading.py")),
    # The tracker's drop decisions, not its flow and look code: when a target is in sight, hidden or out of the view
    # (phase_of), when what it would publish is too small or too unlike the target, when it is given up (_settle), and
    # which answers keep a hidden target's track (anchor). test_tracking.py's moving
    # scenes cover anchor's keep-hidden and part-of decisions; test_tracking_decisions.py the rest on chosen evidence.
    "tracking": Target(
        ("mllmseg_ros/engine/tracking/occlusion.py", "mllmseg_ros/engine/tracking/tracker.py"),
        ("test/engine/test_tracking_decisions.py", "test/engine/test_tracking.py"),
        (*_names(f"{ENGINE}.tracking.occlusion", "phase_of"),
         *_names(f"{ENGINE}.tracking.tracker", "MaskTracker._settle", "MaskTracker.anchor")),
        "the drop decisions: phase_of (in sight, hidden, out of view), _settle (too small, lost, given up after "
        "max_unseen_frames) and anchor (a not-found answer about a target held hidden, a partial answer); not the "
        "flow, motion and look code. state.py's found/reason/followed are properties, which mutmut does not mutate"),
}


def equivalents() -> dict[str, tuple[str, str]]:
    """{mutant name: (equivalent|accepted, reason)} from scripts/mutation_equivalent.tsv."""
    table = {}
    if EQUIVALENT_FILE.exists():
        for line in EQUIVALENT_FILE.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                name, kind, reason = line.split("\t", 2)
                table[name] = (kind, reason)
    return table


def scratch_copy(folder: Path, rev: str | None) -> None:
    """The files the tests need, from the working tree or from ``rev``."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    if rev:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, *COPIED], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    else:
        for name in COPIED:
            shutil.copytree(REPO / name, folder / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def settings(target: Target, tests: list[str]) -> str:
    quoted = lambda items: "[" + ", ".join(json.dumps(i) for i in items) + "]"  # noqa: E731
    return "\n".join([
        "[tool.mutmut]",
        'source_paths = ["mllmseg_ros"]',
        f"only_mutate = {quoted(target.files)}",
        f"pytest_add_cli_args_test_selection = {quoted(tests)}",
        # -x: one failing test kills the mutant; no cache folder in the copy; the suite's own 900 s guard.
        'pytest_add_cli_args = ["-x", "-q", "-p", "no:cacheprovider", "--timeout=900"]',
        'process_isolation = "forkserver"',  # torch and rclpy are not fork-safe once their threads run
        "use_git_change_detection = false",
        "",
    ])


def run_target(name: str, target: Target, rev: str | None, jobs: int, out: Path = OUT) -> dict:
    folder = out / name
    scratch_copy(folder, rev)
    tests = [t for t in target.tests if (folder / t.split("::")[0]).exists()]
    if not tests:
        raise SystemExit(f"mutation: {name}: none of its tests exist in this tree: {', '.join(target.tests)}")
    (folder / "pyproject.toml").write_text(settings(target, tests))
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               MLLMSEG_SHARED_DIR=os.environ.get("MLLMSEG_SHARED_DIR", str(REPO.parent / "shared")))
    started = time.monotonic()
    command = [str(Path(sys.executable).with_name("mutmut")), "run", "--max-children", str(jobs), *target.functions]
    with open(folder / "mutmut.log", "w") as log:
        code = subprocess.run(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    seconds = time.monotonic() - started
    if code != 0:
        raise SystemExit(f"mutation: {name}: mutmut exited {code}; see {folder / 'mutmut.log'}")
    report = subprocess.run([sys.executable, __file__, "--report-in", str(folder), name], cwd=folder, env=env,
                            capture_output=True, text=True)
    if report.returncode != 0:
        raise SystemExit(f"mutation: {name}: report failed:\n{report.stderr}")
    result = json.loads((folder / "report.json").read_text())
    result.update(seconds=round(seconds), rev=rev or "working tree", tests=tests)
    (folder / "report.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    return result


def write_report(folder: Path, name: str) -> None:
    """In the scratch folder (mutmut's settings there): statuses, survivors' diffs, the score."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    target, known = TARGETS[name], equivalents()
    statuses: dict[str, str] = {}
    for path in target.files:
        meta = json.loads((folder / "mutants" / f"{path}.meta").read_text())
        for mutant, code in meta["exit_code_by_key"].items():
            if not target.functions or any(fnmatch.fnmatch(mutant, p) for p in target.functions):
                statuses[mutant] = status_by_exit_code[code]
    # A run stopped early (for time) leaves mutants not run: reported apart, not in the score.
    not_run = sorted(m for m, status in statuses.items() if status in ("not checked", "check was interrupted by user"))
    statuses = {m: status for m, status in statuses.items() if m not in not_run}
    survivors = []
    for mutant, status in sorted(statuses.items()):
        if status in ("killed", "timeout", "segfault"):  # a hang or a crash is caught too
            continue
        diff = get_diff_for_mutant(mutant, path=next(p for p in target.files if p[:-3].replace("/", ".") in mutant))
        changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
        kind, reason = known.get(mutant, ("", ""))
        survivors.append({"mutant": mutant, "status": status, "change": changed, "verdict": kind, "reason": reason})
    equivalent = sum(1 for s in survivors if s["verdict"] == "equivalent")
    killed = len(statuses) - len(survivors)
    score = killed / (len(statuses) - equivalent) if len(statuses) > equivalent else 1.0
    result = {"target": name, "files": list(target.files), "scope": target.about or "whole module",
              "mutants": len(statuses), "killed": killed, "survived": len(survivors), "equivalent": equivalent,
              "accepted": sum(1 for s in survivors if s["verdict"] == "accepted"), "score": round(score, 4),
              "not_run": len(not_run), "survivors": survivors}
    (folder / "report.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    lines = [f"# {name}: {killed}/{len(statuses) - equivalent} killed ({score:.1%}), {equivalent} equivalent"
             + (f", {len(not_run)} not run (stopped early)" if not_run else ""), ""]
    for s in survivors:
        lines += [f"- `{s['mutant']}` ({s['status']}; {s['verdict'] or 'UNJUDGED'}: {s['reason']})",
                  *(f"      {c}" for c in s["change"])]
    (folder / "report.md").write_text("\n".join(lines) + "\n")


def summary(after: Path, before: Path) -> str:
    """docs/testing.md's table and survivor list from the reports under ``after`` (and ``before`` for the scores),
    with the verdicts of scripts/mutation_equivalent.tsv as it is now."""
    known = equivalents()

    def scored(folder: Path, name: str, later_kills: bool = True) -> tuple[dict | None, str]:
        path = folder / name / "report.json"
        if not path.exists():
            return None, "-"
        r = json.loads(path.read_text())
        kinds = [known.get(s["mutant"], ("",))[0] for s in r["survivors"]]
        # "killed": by a test added after the run, checked against that mutation by hand (the reason names it); such
        # a test did not exist for the before run, so only the after score counts it
        equivalent = kinds.count("equivalent")
        killed = r["killed"] + (kinds.count("killed") if later_kills else 0)
        return r, f"{killed}/{r['mutants'] - equivalent} = {killed / (r['mutants'] - equivalent):.1%}"

    rows, survivors = [], []
    for name, target in TARGETS.items():
        r, after_score = scored(after, name)
        if r is None:
            continue
        kinds = [known.get(s["mutant"], ("",))[0] for s in r["survivors"]]
        tests = ", ".join(f"`{t.removeprefix('test/')}`" for t in r["tests"])
        rows.append(f"| {name} | `{', '.join(target.files)}` ({target.about or 'whole module'}) | {tests} | "
                    f"{scored(before, name, later_kills=False)[1]} | {after_score} ({kinds.count('equivalent')} equivalent, "
                    f"{kinds.count('accepted')} accepted" + (f", {kinds.count('killed')} killed by a later test"
                                                             if "killed" in kinds else "")
                    + f", {kinds.count('')} not judged" + (f"; {r['not_run']} not run, stopped for time"
                                                              if r.get("not_run") else "") + ") |")
        if r["survivors"]:
            survivors += [f"**{name}**", ""]
            for s in r["survivors"]:
                kind, reason = known.get(s["mutant"], ("NOT JUDGED", ""))
                change = " / ".join(c[1:].strip() for c in s["change"] if c.startswith("+"))
                survivors.append(f"- `{s['mutant'].rsplit('.', 1)[-1]}`: `{change}`: {kind}{': ' + reason if reason else ''}")
            survivors.append("")
    return "\n".join(rows) + "\n\n" + "\n".join(survivors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help=f"of: {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--rev", help="mutate and test this git revision instead of the working tree")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("MUTATION_JOBS", "1")),
                        help="mutants run at once (default 1: a shared 2-core machine)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"reports under OUT/<target>/ (default {OUT})")
    parser.add_argument("--summary", type=Path, metavar="BEFORE",
                        help="print docs/testing.md's table and survivors from the reports (BEFORE: the before run's)")
    parser.add_argument("--report-in", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.summary:
        print(summary(args.out, args.summary))
        return
    if args.report_in:
        write_report(args.report_in, args.targets[0])
        return
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown target(s) {sorted(unknown)}; known: {', '.join(TARGETS)}")
    failed = []
    for name in args.targets or list(TARGETS):
        result = run_target(name, TARGETS[name], args.rev, args.jobs, args.out.resolve())
        unjudged = [s["mutant"] for s in result["survivors"] if not s["verdict"]]
        print(f"{name}: {result['killed']}/{result['mutants'] - result['equivalent']} killed = {result['score']:.1%} "
              f"({result['equivalent']} equivalent, {result['accepted']} accepted, {len(unjudged)} unjudged) "
              f"in {result['seconds']} s; {args.out / name / 'report.md'}", flush=True)
        if result["score"] < TARGET_SCORE:
            failed.append(name)
    if failed:
        print(f"mutation: below {TARGET_SCORE:.0%}: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
