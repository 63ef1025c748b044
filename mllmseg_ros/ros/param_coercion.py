"""Parameter values as people type them, turned into the type each parameter has, or one clear reason why not.

ROS reads `-p name:=value`, launch arguments and params files as YAML: `off`/`on`/`yes`/`no` become booleans, `1`
an integer and `[]` "no value". A node that declares its parameters with fixed types then stops with
InvalidParameterTypeException on `-p tracking:=off` or `threshold: 1`. The node declares its parameters with
``dynamic_typing`` (rclpy accepts any type) and every value goes through ``coerce`` here instead: the value a person
meant when there is one, a reason naming the parameter and what it accepts when there is not.
"""
from __future__ import annotations

import math
from typing import Any

# YAML 1.1 words for booleans (what rcl's parser and PyYAML read as true/false), for text given where a boolean belongs
_TRUE_WORDS = {"true", "yes", "on", "y", "1"}
_FALSE_WORDS = {"false", "no", "off", "n", "0"}


def kind_of(default: Any) -> str:
    """The parameter's type, from its default: bool, int, float, str or str_list."""
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, (list, tuple)):
        return "str_list"
    return "str"


def expected(spec) -> str:
    """What ``spec`` accepts, in words."""
    kind = kind_of(spec.default)
    if spec.choices:
        return "one of " + ", ".join(spec.choices)
    if kind == "float" and spec.float_range:
        return f"a number from {spec.float_range[0]:g} to {spec.float_range[1]:g}"
    if kind == "int" and spec.int_range:
        return f"a whole number from {spec.int_range[0]} to {spec.int_range[1]}"
    return {"bool": "true or false", "int": "a whole number", "float": "a number", "str": "a string",
            "str_list": "a list of strings"}[kind]


def _text_for_boolean(spec, value: bool) -> str:
    """A YAML boolean given for a string parameter: the word the person most likely typed."""
    for pair in (("on", "off"), ("true", "false"), ("yes", "no")):
        if set(pair) <= set(spec.choices):
            return pair[0] if value else pair[1]
    return "true" if value else "false"


def coerce(spec, value: Any) -> Any:
    """``value`` as the type of ``spec`` (a params.ParameterSpec), within its range and choices. ValueError with the
    reason otherwise."""
    kind = kind_of(spec.default)
    wrong = ValueError(f"{spec.name}: {value!r} is not {expected(spec)}")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
            return value.strip().lower() in _TRUE_WORDS
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise wrong
    if kind in ("int", "float"):
        number = _number(value)
        if number is None or (kind == "int" and number != int(number)):
            raise wrong
        number = int(number) if kind == "int" else float(number)
        bounds = spec.int_range if kind == "int" else spec.float_range
        if bounds and not bounds[0] <= number <= bounds[1]:
            raise ValueError(f"{spec.name}: {value!r} is out of range; expected {expected(spec)}")
        return number
    if kind == "str_list":
        if value is None or (isinstance(value, (list, tuple)) and not value):
            return [""]  # `[]`: rcl cannot type an empty list, so it arrives as "not set"; it means what [''] means
        if isinstance(value, str):
            return [value]
        if isinstance(value, (list, tuple)) and not any(isinstance(v, bool) for v in value):
            return [str(v) for v in value]
        raise ValueError(f"{spec.name}: {value!r} is not a list of strings (YAML reads yes/no/on/off as booleans: "
                         "quote them)")
    # str
    if isinstance(value, bool):
        text = _text_for_boolean(spec, value)
    elif isinstance(value, (int, float)):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise wrong
    if spec.choices:  # any case (`Compressed`, `compresseddepth`); the choice as the node spells it
        spelt = {choice.lower(): choice for choice in spec.choices}.get(text.strip().lower())
        if spelt is None:
            raise wrong
        return spelt
    return text


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None
