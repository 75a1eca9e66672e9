"""Typed config sections: a dataclass whose fields are a section's keys, each declared once with its type, default
and valid range, and one function that turns a config mapping into it.

    @dataclass(frozen=True)
    class TrainerSettings(Section):
        lr: float = setting(1e-3, above=0)
        schedule: str = setting("cosine", choices=("cosine", "constant"))
        max_epochs: int | None = setting(None, at_least=1)

    TrainerSettings.parse({"lr": 0.01}, "trainer")   # checked, coerced, defaults filled in
    TrainerSettings.parse({"lr": float("nan")}, "trainer")
    # UserError: trainer.lr=nan is out of range: allowed a number > 0 (default 0.001)

Why not pydantic or OmegaConf's structured configs: Hydra has already typed every value, and what is missing is
a declared range per key with a one-line message naming key, value and what is allowed; pydantic's lax mode turns
`true` into 1 for an int field and its strict mode refuses `1` for a float one, and OmegaConf's schemas know no
ranges and would retype the composed config that run folders are hashed from. So the declarations are plain
dataclass field metadata and the check is the one function below.

Every int or float field must declare a range (a test walks every section); a value outside it, NaN and infinity
included, fails with the key, the value and the range. A key the section lacks fails naming the nearest one.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import MISSING, dataclass
from typing import Any, ClassVar, TypeVar, Union

from tsad.errors import UserError

S = TypeVar("S", bound="Section")
NUMBER_TYPES = (int, float)


@dataclass(frozen=True)
class Range:
    """The values a numeric key allows: bounds inclusive (at_least, at_most) or exclusive (above, below)."""

    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    below: float | None = None

    def holds(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        return ((self.at_least is None or value >= self.at_least) and (self.above is None or value > self.above)
                and (self.at_most is None or value <= self.at_most) and (self.below is None or value < self.below))

    def text(self, integer: bool) -> str:
        parts = [f"{sign} {number_text(bound)}" for sign, bound in ((">=", self.at_least), (">", self.above),
                                                       ("<=", self.at_most), ("<", self.below)) if bound is not None]
        kind = "an integer" if integer else "a number"
        return f"{kind} {' and '.join(parts)}" if parts else f"any finite {kind[2:] if integer else 'number'}"


def number_text(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def setting(default: Any = MISSING, *, at_least: float | None = None, above: float | None = None,
            at_most: float | None = None, below: float | None = None, choices: tuple | None = None,
            finite: bool = False, factory: Any = MISSING) -> Any:
    """A dataclass field with its default and what it allows: a range for numbers (`finite=True` declares the
    range "any finite number"), `choices` for a closed set of values. A list default needs `factory`."""
    metadata = {}
    if finite or any(bound is not None for bound in (at_least, above, at_most, below)):
        metadata["range"] = Range(at_least, above, at_most, below)
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if factory is not MISSING:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Section:
    """Base of every typed config section; `parse` is the one way a mapping becomes one."""

    # Keys a mapping of this section may hold that are not fields (read by other parts of the run), if any.
    passthrough: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def parse(cls: type[S], mapping: dict | None, prefix: str, owner: str | None = None) -> S:
        """The section `mapping` describes (defaults for missing keys), every value checked; `owner` names the
        option in an unknown key's message (e.g. "threshold sigma")."""
        return cls(**check_values(cls, mapping, prefix, owner))

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in config_fields(type(self))}


def config_fields(cls: type) -> list[dataclasses.Field]:
    """The fields a config may set: init fields that are not keyword-only (those are set by the run)."""
    return [f for f in dataclasses.fields(cls) if f.init and not f.kw_only]


def default_of(spec: dataclasses.Field) -> Any:
    if spec.default is not MISSING:
        return spec.default
    return spec.default_factory() if spec.default_factory is not MISSING else MISSING


def check_values(cls: type, mapping: dict | None, prefix: str, owner: str | None = None) -> dict:
    """The checked, coerced values of `mapping` against the fields of dataclass `cls` (missing keys left out);
    `owner` names the section's option in an unknown key's message (default: the prefix)."""
    mapping = dict(mapping or {})
    known = {spec.name: spec for spec in config_fields(cls)}
    for key in getattr(cls, "passthrough", ()):
        mapping.pop(key, None)
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        raise unknown_key(dotted(prefix, unknown[0]), sorted(known), f"{owner or prefix or 'the config'} has")
    hints = typing.get_type_hints(cls)
    return {key: check_value(dotted(prefix, key), value, hints[key], known[key]) for key, value in mapping.items()}


def dotted(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def unknown_key(key: str, known: list[str], owner: str) -> UserError:
    parent, _, name = key.rpartition(".")
    nearest = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {parent + '.' if parent else ''}{nearest[0]}?" if nearest else ""
    return UserError(f"unknown key {key!r}{hint} ({owner}: {', '.join(known) or 'no keys'})")


def check_value(key: str, value: Any, annotation: Any, spec: dataclasses.Field | None = None) -> Any:
    """`value` as the type `annotation` says (ints taken as floats where a float is declared), within the field's
    declared range and choices; a one-line UserError otherwise."""
    given = value
    value = coerce(key, value, annotation)
    metadata = spec.metadata if spec is not None else {}
    choices = metadata.get("choices")
    if choices is not None and value is not None and value not in choices:
        listed = ", ".join(dict.fromkeys(display(choice) for choice in choices))
        raise UserError(f"{key}={display(given)} is not allowed: choose one of {listed}{default_hint(spec)}")
    allowed = metadata.get("range")
    if allowed is not None:
        for number in numbers_in(value):
            if not allowed.holds(number):
                integer = isinstance(number, int)
                raise UserError(f"{key}={display(given)} is out of range: allowed {allowed.text(integer)}"
                                f"{default_hint(spec)}")
    return value


def numbers_in(value: Any) -> list:
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, NUMBER_TYPES):
        return [value]
    if isinstance(value, (list, tuple)):
        return [n for item in value for n in numbers_in(item)]
    if isinstance(value, dict):
        return [n for item in value.values() for n in numbers_in(item)]
    return []


def default_hint(spec: dataclasses.Field | None) -> str:
    if spec is None:
        return ""
    default = default_of(spec)
    return "" if default is MISSING else f" (default {display(default)})"


def display(value: Any) -> str:
    """A value as a user writes it on the command line (text in quotes only where it needs them)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return value if value and not set(value) & set(" \t,=[]{}'\"") else repr(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return repr(value)
    return str(value) if not isinstance(value, (list, tuple, dict)) else repr(value)


def coerce(key: str, value: Any, annotation: Any) -> Any:
    """`value` as `annotation` (int, float, str, bool, a Literal, X | None, list[X], tuple[X, ...], dict, Any)."""
    if annotation is Any or annotation is object:
        return value
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in arguments:
            return None
        options = [a for a in arguments if a is not type(None)]
        errors = []
        for option in sorted(options, key=union_order):
            try:
                return coerce(key, value, option)
            except UserError as error:
                errors.append(error)
        if value is None:
            raise UserError(f"{key} needs a value ({describe(annotation)}), got null")
        raise UserError(f"{key}={display(value)} has the wrong type: expected {describe(annotation)}")
    if origin is typing.Literal:
        if value in arguments:
            return value
        raise UserError(f"{key}={display(value)} is not allowed: choose one of {', '.join(map(str, arguments))}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{key}={display(value)} has the wrong type: expected {describe(annotation)}, "
                            f"written {key}=[...]")
        if origin is tuple and arguments and arguments[-1] is not Ellipsis:
            if len(value) != len(arguments):
                raise UserError(f"{key}={display(value)} needs {len(arguments)} values ({describe(annotation)})")
            return tuple(coerce(f"{key}[{i}]", item, kind) for i, (item, kind) in enumerate(zip(value, arguments)))
        item_type = arguments[0] if arguments else Any
        items = [coerce(f"{key}[{i}]", item, item_type) for i, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise UserError(f"{key}={display(value)} has the wrong type: expected a mapping")
        if arguments:
            return {k: coerce(f"{key}.{k}", v, arguments[1]) for k, v in value.items()}
        return dict(value)
    if value is None:
        raise UserError(f"{key} needs a value ({describe(annotation)}), got null")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{key}={display(value)} has the wrong type: expected true or false")
    is_number = isinstance(value, NUMBER_TYPES) and not isinstance(value, bool)
    if annotation is int:
        if is_number and (isinstance(value, int) or (math.isfinite(value) and float(value).is_integer())):
            return int(value)
        raise UserError(f"{key}={display(value)} has the wrong type: expected an integer")
    if annotation is float:
        if is_number:
            return float(value)
        raise UserError(f"{key}={display(value)} has the wrong type: expected a number")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise UserError(f"{key}={display(value)} has the wrong type: expected a string")
    if isinstance(annotation, type) and not isinstance(value, annotation):
        raise UserError(f"{key}={display(value)} has the wrong type: expected {describe(annotation)}")
    return value


def union_order(option: Any) -> int:
    """Try the strictest type first: bool, int, float, then the rest (so 3 stays an int in `int | str`)."""
    return {bool: 0, int: 1, float: 2}.get(option, 3)


def describe(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in arguments)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, arguments))
    if origin in (list, tuple):
        plural = {int: "integers", float: "numbers", str: "strings", bool: "true/false values"}
        return f"a list of {plural.get(arguments[0], 'values') if arguments else 'values'}"
    if origin is dict:
        return "a mapping"
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping",
             type(None): "null"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def numeric_fields_without_range(cls: type) -> list[str]:
    """Fields of `cls` whose type admits a number but that declare no range (a test keeps this empty)."""
    hints = typing.get_type_hints(cls)
    return [spec.name for spec in config_fields(cls)
            if admits_number(hints[spec.name]) and "range" not in spec.metadata and "choices" not in spec.metadata]


def admits_number(annotation: Any) -> bool:
    if annotation in NUMBER_TYPES:
        return True
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType, list, tuple):
        return any(admits_number(a) for a in typing.get_args(annotation) if a is not Ellipsis)
    if origin is dict:
        return admits_number(typing.get_args(annotation)[1]) if typing.get_args(annotation) else False
    return False
