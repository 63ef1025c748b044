"""Accuracy of the spoken-command reader per category of a labelled corpus (test/engine/data/spoken_commands.tsv).

    .venv/bin/python benchmarks/bench_commands.py [CORPUS.tsv ...] [--failures] [--write-readme]

A corpus line is right when the parsed targets (in order) and the stop flag are exactly the labelled ones. The corpus
format is in the shipped file's header; a corpus without a category column counts under "all".
"""
from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mllmseg_ros.engine.commands import parse_command  # noqa: E402

CORPUS = REPO / "test" / "engine" / "data" / "spoken_commands.tsv"
README = REPO / "benchmarks" / "README.md"
MARKERS = ("<!-- bench_commands table -->", "<!-- end bench_commands table -->")


@dataclass(frozen=True)
class Labelled:
    utterance: str
    targets: tuple[str, ...]
    stop: bool
    category: str


def read_corpus(path: Path = CORPUS) -> list[Labelled]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    return [
        Labelled(row["utterance"], () if row["targets"].strip() == "-" else tuple(t.strip() for t in row["targets"].split(" | ")),
                 row["stop"].strip() == "yes", (row.get("category") or "all").strip())
        for row in csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    ]


def score(corpus: list[Labelled]) -> tuple[dict[str, tuple[int, int]], list[tuple[Labelled, object]]]:
    """({category: (right, total)}, the wrong lines with what was parsed)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    wrong = []
    for line in corpus:
        parsed = parse_command(line.utterance)
        right = parsed.expressions == line.targets and parsed.stop == line.stop
        counts[line.category][0] += right
        counts[line.category][1] += 1
        if not right:
            wrong.append((line, parsed))
    return {k: (v[0], v[1]) for k, v in counts.items()}, wrong


def table(counts: dict[str, tuple[int, int]]) -> str:
    rows = ["| category | utterances | right | accuracy |", "|---|---|---|---|"]
    for category, (right, total) in sorted(counts.items(), key=lambda kv: -kv[1][1]):
        rows.append(f"| {category} | {total} | {right} | {right / total:.1%} |")
    right, total = sum(r for r, _ in counts.values()), sum(t for _, t in counts.values())
    rows.append(f"| **all** | {total} | {right} | **{right / total:.1%}** |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="*", type=Path, default=[CORPUS])
    parser.add_argument("--failures", action="store_true", help="list the lines read wrongly")
    parser.add_argument("--write-readme", action="store_true", help="put the project corpus's table in benchmarks/README.md")
    args = parser.parse_args()
    if args.write_readme:
        text = README.read_text()
        before, rest = text.split(MARKERS[0], 1)
        after = rest.split(MARKERS[1], 1)[1]
        README.write_text(f"{before}{MARKERS[0]}\n{table(score(read_corpus())[0])}\n{MARKERS[1]}{after}")
    for path in args.corpus:
        counts, wrong = score(read_corpus(path))
        print(f"{path}:\n{table(counts)}\n")
        if args.failures:
            for line, parsed in wrong:
                print(f"  [{line.category}] {line.utterance!r}: expected {list(line.targets)} stop={line.stop}, "
                      f"got {list(parsed.expressions)} stop={parsed.stop} ({parsed.intent}: {parsed.reason})")


if __name__ == "__main__":
    main()
