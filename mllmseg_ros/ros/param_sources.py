"""Where the node's parameters come from (``--params-file``, ``-p``), and what would otherwise be silently lost.

rcl applies a params file's section only when its key names this node (``/**`` any node, ``/robot1/mllmseg_node``
this one); a file keyed ``mllmseg_node:`` does not match the node started in a namespace, and a misspelt name
(``thresold``) is ignored: nothing says so, and the node runs with its defaults. rcl also refuses to start at all on
a file it cannot parse. This module reads the same arguments and files, so the node can say what was not used.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import yaml

# the rcl messages that name the argument it could not parse
_UNPARSEABLE = (re.compile(r"Couldn't parse params file: '--params-file (?P<arg>[^']*)'"),
                re.compile(r"Couldn't parse parameter override rule: '(?:-p|--param) (?P<arg>[^']*)'"))


@dataclass
class RosArguments:
    params_files: list[str] = field(default_factory=list)
    param_names: list[str] = field(default_factory=list)  # names given with -p / --param


def ros_arguments(argv: Iterable[str]) -> RosArguments:
    """The params files and -p names in the ``--ros-args`` sections of ``argv``."""
    found, inside, expecting = RosArguments(), False, None
    for arg in argv:
        if expecting is not None:
            if expecting == "file":
                found.params_files.append(arg)
            else:
                found.param_names.append(arg.split(":=", 1)[0])
            expecting = None
        elif arg == "--ros-args":
            inside = True
        elif arg == "--":
            inside = False
        elif inside and arg == "--params-file":
            expecting = "file"
        elif inside and arg in ("-p", "--param"):
            expecting = "param"
    return found


def without_argument(argv: list[str], flags: tuple[str, ...], value: str) -> list[str]:
    """``argv`` less the first ``flag value`` pair (flag one of ``flags``) in a --ros-args section."""
    for index in range(len(argv) - 1):
        if argv[index] in flags and argv[index + 1] == value:
            return argv[:index] + argv[index + 2:]
    return argv


def drop_unparseable(argv: list[str], error: str) -> tuple[list[str], str] | None:
    """(``argv`` without the argument rcl named in ``error``, a line saying what was dropped), or None when the
    message names none."""
    for pattern, flags in zip(_UNPARSEABLE, (("--params-file",), ("-p", "--param"))):
        match = pattern.search(error)
        if match:
            shorter = without_argument(argv, flags, match["arg"])
            if shorter != argv:
                what = "params file" if flags == ("--params-file",) else "parameter"
                reason = error.split("Error:", 1)[-1].split(", at ")[0].strip()
                return shorter, f"{what} {match['arg']!r} could not be parsed and was not used: {reason}"
    return None


def key_matches(key: str, node_name: str) -> bool:
    """Whether a params-file key (``/**``, ``/*/name``, ``name``, ``/ns/name``) selects the node whose fully
    qualified name is ``node_name``, by rcl's rules: ``**`` any number of name parts, ``*`` one part or part of one."""
    key = key if key.startswith("/") else "/" + key
    parts = ["(/[^/]+)*" if part == "**" else "/" + re.escape(part).replace(r"\*", "[^/]*")
             for part in key.strip("/").split("/")]
    return re.fullmatch("".join(parts), node_name) is not None


def _flatten(values: dict, prefix: str = "") -> dict[str, object]:
    """Nested mappings as rcl reads them: {'a': {'b': 1}} -> {'a.b': 1}."""
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def params_file_problems(path: str, node_name: str, known: Callable[[str], bool]) -> list[str]:
    """What of the params file at ``path`` this node does not use: no section for it, or names it does not have."""
    try:
        content = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        return [f"params file {path}: cannot be read ({exc})"]
    if not isinstance(content, dict):
        return [f"params file {path}: no node sections in it"]
    sections = {key: value for key, value in content.items() if key_matches(str(key), node_name)}
    if not sections:
        keys = ", ".join(repr(str(key)) for key in content)
        return [f"params file {path}: no section applies to this node {node_name} (sections: {keys}); its values "
                f"are not used. Key it '/**' (any node) or '{node_name}'"]
    problems = []
    for key, section in sections.items():
        parameters = section.get("ros__parameters", {}) if isinstance(section, dict) else {}
        for name in _flatten(parameters or {}):
            if not known(name):
                problems.append(f"params file {path}: {name!r} (section {key!r}) is not a parameter of this node; "
                                "ignored")
    return problems


def unused_parameters(arguments: RosArguments, node_name: str, known: Callable[[str], bool]) -> list[str]:
    """Every params-file section, file value and -p name that this node does not use, in words."""
    problems = [f"-p {name}: not a parameter of this node; ignored" for name in arguments.param_names if not known(name)]
    for path in arguments.params_files:
        problems += params_file_problems(path, node_name, known)
    return problems
