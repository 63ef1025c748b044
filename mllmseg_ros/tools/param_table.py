"""docs/parameters.md's table, generated from the node's parameter declarations (``ros/params.py``: ``PARAMETERS``).

    python -m mllmseg_ros.tools.param_table            # print the table
    python -m mllmseg_ros.tools.param_table --write    # rewrite it in docs/parameters.md

test/test_docs.py fails when the page and the declarations differ.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..ros.params import PARAMETERS, ParameterSpec

PAGE = Path(__file__).resolve().parents[2] / "docs" / "parameters.md"
MARKERS = ("<!-- parameter table: python -m mllmseg_ros.tools.param_table --write -->", "<!-- end of parameter table -->")


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value or '""'
    if isinstance(value, list):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _allowed(spec: ParameterSpec) -> str:
    if spec.choices:
        return " / ".join(spec.choices)
    limits = spec.float_range or spec.int_range
    return f"{_value(limits[0])} .. {_value(limits[1])}" if limits else ""


def table() -> str:
    rows = ["| parameter | default | allowed | at run time | description |", "|---|---|---|---|---|"]
    for spec in PARAMETERS:
        allowed = _allowed(spec)
        rows.append(f"| `{spec.name}` | `{_value(spec.default)}` | {f'`{allowed}`' if allowed else ''} | "
                    f"{'yes' if spec.runtime else 'no'} | {spec.description} |")
    return "\n".join(rows)


def documented(page: str) -> str:
    """The table as the page has it (between the markers)."""
    return page.split(MARKERS[0], 1)[1].split(MARKERS[1], 1)[0].strip()


def write(path: Path = PAGE) -> None:
    page = path.read_text(encoding="utf-8")
    before, rest = page.split(MARKERS[0], 1)
    after = rest.split(MARKERS[1], 1)[1]
    path.write_text(f"{before}{MARKERS[0]}\n{table()}\n{MARKERS[1]}{after}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite the table in {PAGE}")
    args = parser.parse_args(argv)
    if args.write:
        write()
    else:
        print(table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
