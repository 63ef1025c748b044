"""Stand-ins for a message package that is not installable here, built from its field layout (``.msg`` files with
the official field lines). Like rclpy's generated classes they take keyword arguments, refuse a field that the
message does not have and a value of the wrong type (an int for a float64), and nest other messages; std_msgs and
geometry_msgs fields are the real classes. They cannot be published (no type support): for conversion tests."""
from __future__ import annotations

import importlib
from pathlib import Path
from types import SimpleNamespace

PRIMITIVES = {"float64": (float, 0.0), "float32": (float, 0.0), "string": (str, ""), "bool": (bool, False),
              "int32": (int, 0), "uint32": (int, 0), "uint8": (int, 0), "int64": (int, 0)}


def fake_package(folder: Path, package: str) -> SimpleNamespace:
    layouts = {path.stem: [line.split()[:2] for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
               for path in sorted(folder.glob("*.msg"))}
    classes: dict[str, type] = {}

    def resolve(type_name: str):
        name = type_name.split("/")[-1]
        if "/" in type_name and not type_name.startswith(package + "/"):
            module, _, message = type_name.partition("/")
            return getattr(importlib.import_module(f"{module}.msg"), message)
        return make(name)

    def make(name: str) -> type:
        if name in classes:
            return classes[name]
        fields = layouts[name]

        def __init__(self, **kwargs):
            unknown = set(kwargs) - {field for _, field in fields}
            if unknown:
                raise AttributeError(f"{name} has no field {sorted(unknown)}")
            for type_name, field in fields:
                if type_name.endswith("[]"):
                    default = []
                elif type_name in PRIMITIVES:
                    default = PRIMITIVES[type_name][1]
                else:
                    default = resolve(type_name)()
                setattr(self, field, kwargs.get(field, default))

        def __setattr__(self, field, value):
            kinds = dict((f, t) for t, f in fields)
            if field not in kinds:
                raise AttributeError(f"{name} has no field {field!r}")
            kind = kinds[field]
            if kind in PRIMITIVES and not isinstance(value, PRIMITIVES[kind][0]):
                raise TypeError(f"{name}.{field} must be {PRIMITIVES[kind][0].__name__}, got {value!r}")
            if kind.endswith("[]"):
                value = list(value)
            elif kind not in PRIMITIVES and not isinstance(value, resolve(kind)):
                raise TypeError(f"{name}.{field} must be {kind}, got {type(value).__name__}")
            object.__setattr__(self, field, value)

        classes[name] = type(name, (), {"__slots__": [f for _, f in fields], "__init__": __init__,
                                        "__setattr__": __setattr__})
        return classes[name]

    return SimpleNamespace(**{name: make(name) for name in layouts})
