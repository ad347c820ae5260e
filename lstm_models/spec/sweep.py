"""Sweep specs: frozen dataclasses, and `load_sweep`.

The spec is validated once when the YAML is loaded, against the rules of its sections
(`lstm_models.spec.sections`; the checking itself is `lstm_models.spec.rules`; the ``dataset:`` block is checked by its loader's own rules, see
`lstm_models.data`): every message names the file, the key and the value, and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lstm_models.errors import ConfigError
from lstm_models.spec.rules import Param, check_section
from lstm_models.spec.sections import (DEFAULT_OBJECTIVE, DEFAULT_SEARCH, EARLY_STOPPING_RULES, OBJECTIVES,
                                       PRUNING_RULES, SEARCH_RULES, TOP_RULES, TRACKING_RULES, TUNER_RULES,
                                       VERDICT_RULES)

if TYPE_CHECKING:
    from lstm_models.data.options import DataSpec


@dataclass(frozen=True)
class SearchSpace:
    """The hyperparameters searched, each a `Param`."""

    cells: Param
    units: Param
    depth: Param
    dropout: Param
    recurrent_dropout: Param
    learning_rate: Param
    bidirectional: Param
    batch_size: Param
    embedding_dim: Param
    pooling: Param
    clipnorm: Param
    unit_forget_bias: Param
    residual: Param


@dataclass(frozen=True)
class TunerSpec:
    kind: str = "hyperband"
    max_trials: int = 10
    max_epochs: int = 10
    seed: int = 42
    factor: int = 3
    balance_cells: bool = True
    jit_compile: bool = False  # XLA: faster epochs, a compile per batch shape and trial
    time_budget: float | None = None  # seconds of wall-clock time after which no trial starts
    worker_timeout: float = 120.0  # seconds a worker's trial may go unheard before another worker runs it
    workers: int = 0  # local worker processes when the command line names none (0: this one process)


@dataclass(frozen=True)
class EarlyStopping:
    patience: int = 3
    min_delta: float = 0.0


@dataclass(frozen=True)
class TrackingSpec:
    system_metrics: bool = True  # each trial run samples CPU and memory (GPUs where present)


@dataclass(frozen=True)
class VerdictSpec:
    """After the search: each cell's best configuration trained again with ``seeds`` seeds (0: no
    verdict); ``match: params`` also trains every cell at the winner's parameter count."""

    seeds: int = 0
    match: str = "none"


@dataclass(frozen=True)
class PruningSpec:
    """Stop a trial after an epoch whose objective is worse than the median of the ended trials
    at that epoch (``kind: median``), once ``warmup_trials`` of them reached it and the trial has
    trained ``warmup_epochs`` epochs before the one judged (0: its first epoch can be judged)."""

    kind: str = "none"
    warmup_trials: int = 4
    warmup_epochs: int = 1


@dataclass(frozen=True)
class SweepSpec:
    """A whole sweep: what data, what to search, how to search, what to optimise."""

    name: str
    task: str
    dataset: DataSpec
    search: SearchSpace
    tuner: TunerSpec
    early_stopping: EarlyStopping
    objective: str
    description: str = ""
    source: str = ""
    tracking: TrackingSpec = TrackingSpec()
    verdict: VerdictSpec = VerdictSpec()
    pruning: PruningSpec = PruningSpec()

    @property
    def direction(self) -> str:
        """``max`` for accuracies, ``min`` for losses and errors."""
        return "max" if "accuracy" in self.objective else "min"

    def with_overrides(self, verdict_seeds: int | None = None, pruning: str | None = None,
                       **overrides: Any) -> "SweepSpec":
        """Return a copy with tuner settings, the verdict's seeds and the pruner's kind replaced
        (command-line flags); None is ignored."""
        given = {k: v for k, v in overrides.items() if v is not None}
        spec = self
        if given:
            raw = _section(self.tuner)
            raw.update(given)
            spec = replace(spec, tuner=TunerSpec(**check_section(raw, TUNER_RULES, "command line", "")))
        if verdict_seeds is not None:
            raw = {**_section(self.verdict), "seeds": verdict_seeds}
            spec = replace(spec, verdict=VerdictSpec(**check_section(raw, VERDICT_RULES, "command line", "--verdict-")))
        if pruning is not None:
            raw = {**_section(self.pruning), "kind": pruning}
            spec = replace(spec, pruning=PruningSpec(**check_section(raw, PRUNING_RULES, "command line", "pruning.")))
        return spec

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved spec, as it would be written in YAML."""
        return {
            "name": self.name,
            "task": self.task,
            "description": self.description,
            "dataset": {"kind": self.dataset.kind, **_plain(self.dataset.given())},
            "search": {f.name: getattr(self.search, f.name).to_yaml() for f in fields(SearchSpace)},
            **{name: _section(getattr(self, name)) for name in SECTIONS},
            "objective": self.objective,
        }


def _section(values) -> dict[str, Any]:
    return {f.name: getattr(values, f.name) for f in fields(values)}


# The spec's plain sections: each a frozen dataclass checked against its rules.
SECTIONS = {"tuner": (TunerSpec, TUNER_RULES), "early_stopping": (EarlyStopping, EARLY_STOPPING_RULES),
            "tracking": (TrackingSpec, TRACKING_RULES), "verdict": (VerdictSpec, VERDICT_RULES),
            "pruning": (PruningSpec, PRUNING_RULES)}


def _plain(options: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.to_yaml() if isinstance(v, Param) else v) for k, v in options.items()}


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec.

    Args:
        path: a YAML file.

    Returns:
        The validated `SweepSpec`, every default filled in.

    Raises:
        ConfigError: with one line naming the file, the key and the value.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such sweep spec (expected a YAML file, e.g. sweeps/sentiment.yaml)")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_SpecLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse_sweep(raw, source=str(path))


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no tags that run code), but a key given twice in one mapping is an
    error: `yaml.safe_load` keeps the last, so a second ``search:`` silently replaced the first."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice in one mapping",
                                                        key_node.start_mark)
            seen.add(key if isinstance(key, (str, int, float, bool)) else id(key_node))
        return super().construct_mapping(node, deep)


def parse_sweep(raw: Any, source: str = "<spec>") -> SweepSpec:
    """Validate an already-parsed spec (a mapping); see `load_sweep`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a sweep spec must be a mapping of keys (name, task, dataset ...)")
    top = check_section(raw, TOP_RULES, source, "")
    task = top["task"]
    dataset = _parse_dataset(top["dataset"], task, source)
    search = _parse_search(top["search"], task, source)
    sections = {name: cls(**check_section(_mapping(top[name], source, name), rules, source, f"{name}."))
                for name, (cls, rules) in SECTIONS.items()}
    objective = top["objective"] or DEFAULT_OBJECTIVE[task]
    if objective not in OBJECTIVES[task]:
        raise ConfigError(
            f"{source}: objective must be one of {', '.join(OBJECTIVES[task])} for task {task}. "
            f"Got {objective!r} instead."
        )
    return SweepSpec(
        name=_check_name(top["name"], source),
        task=task,
        dataset=dataset,
        search=search,
        objective=objective,
        description=top["description"],
        source=source,
        **sections,
    )


def _check_name(name: str, source: str) -> str:
    if not name or not name[0].isalnum() or not all(c.isalnum() or c in "-_." for c in name):  # not '..' nor '.'
        raise ConfigError(
            f"{source}: name must start with a letter or digit and hold only letters, digits, '-', '_' or '.' "
            "(it names the sweep's state and export folders). "
            f"Got {name!r} instead."
        )
    return name


def _mapping(value: Any, source: str, key: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {key} must be a mapping. Got {type(value).__name__} {value!r} instead.")
    return value


def _parse_dataset(raw: Any, task: str, source: str) -> DataSpec:
    from lstm_models.data import parse_dataset

    return parse_dataset(_mapping(raw, source, "dataset"), task, source)


def _parse_search(raw: Any, task: str, source: str) -> SearchSpace:
    merged = dict(DEFAULT_SEARCH[task])
    merged.update(_mapping(raw, source, "search"))
    checked = check_section(merged, SEARCH_RULES, source, "search.")
    return SearchSpace(**checked)


