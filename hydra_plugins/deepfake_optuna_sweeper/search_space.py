"""Hydra sweep syntax -> Optuna distributions, and a trial's values -> Hydra overrides.

No `from __future__ import annotations`: Hydra imports plugin modules outside `sys.modules`, where dataclasses
cannot resolve string annotations.
"""

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

_PLAIN_STRING = re.compile(r"[A-Za-z_][\w\-./:@]*")
_PRIMITIVES = (str, int, float, bool, type(None))


def format_value(value: Any) -> str:
    """A Python value in Hydra's override grammar (lists and dicts included)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, str):
        if _PLAIN_STRING.fullmatch(value) and value.lower() not in ("null", "true", "false", "inf", "nan"):
            return value
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as a Hydra override value")


@dataclass
class Dimension:
    """One searched key. Non-scalar choices (lists) are categorical over their override text (``raw``)."""

    key: str  # as written, with a + prefix when the key is added
    distribution: BaseDistribution
    raw: bool = False

    @property
    def name(self) -> str:
        return self.key.lstrip("+~")

    def override(self, value: Any) -> str:
        return f"{self.key}={value if self.raw else format_value(value)}"


def _choice(key: str, sweep: ChoiceSweep) -> Dimension:
    values = list(sweep.list)
    if all(isinstance(v, _PRIMITIVES) for v in values):
        return Dimension(key, CategoricalDistribution(values))
    return Dimension(key, CategoricalDistribution([format_value(v) for v in values]), raw=True)


def _range(key: str, sweep: RangeSweep) -> Dimension:
    start, stop, step = sweep.start, sweep.stop, sweep.step
    if all(isinstance(v, int) for v in (start, stop, step)) and step > 0 and stop > start:
        return Dimension(key, IntDistribution(start, start + step * ((stop - start - 1) // step), step=step))
    values = []
    value = start
    while (step > 0 and value < stop) or (step < 0 and value > stop):
        values.append(value)
        value += step
    return Dimension(key, CategoricalDistribution(values))


def _interval(key: str, sweep: IntervalSweep) -> Dimension:
    log = "log" in sweep.tags
    if isinstance(sweep.start, int) and isinstance(sweep.end, int):
        return Dimension(key, IntDistribution(sweep.start, sweep.end, log=log))
    return Dimension(key, FloatDistribution(float(sweep.start), float(sweep.end), log=log))


def _dimension(override: Override) -> Dimension:
    key = override.input_line.split("=", 1)[0].strip()
    value = override.value()
    if isinstance(value, ChoiceSweep):
        return _choice(key, value)
    if isinstance(value, RangeSweep):
        return _range(key, value)
    if isinstance(value, IntervalSweep):
        return _interval(key, value)
    raise ValueError(f"{override.input_line}: unsupported sweep (use choice, range or interval)")


@dataclass
class SearchSpace:
    dimensions: dict[str, Dimension]
    fixed: list[str]  # plain overrides passed unchanged to every trial

    @property
    def distributions(self) -> dict[str, BaseDistribution]:
        return {name: dim.distribution for name, dim in self.dimensions.items()}

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        return self.fixed + [dim.override(params[name]) for name, dim in self.dimensions.items()]


def parse_search_space(params: Mapping[str, Any] | None, arguments: Sequence[str]) -> SearchSpace:
    """``params`` from the config, then the command line: a sweep there adds or replaces a dimension, a plain
    value fixes the key (and removes it from the search)."""
    parser = OverridesParser.create()
    lines = [f"{key}={value}" for key, value in (params or {}).items()]
    dimensions: dict[str, Dimension] = {}
    fixed: list[str] = []
    for override in parser.parse_overrides(lines):
        dim = _dimension(override) if override.is_sweep_override() else None
        if dim is None:
            fixed.append(override.input_line)
        else:
            dimensions[dim.name] = dim
    for override in parser.parse_overrides(list(arguments)):
        if override.is_sweep_override():
            dim = _dimension(override)
            dimensions[dim.name] = dim
        else:
            dimensions.pop(override.key_or_group, None)
            fixed.append(override.input_line)
    return SearchSpace(dimensions, fixed)
