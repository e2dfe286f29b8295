"""Export targets as plugins: one :class:`Target` per sub-package, collected here.

A target is everything the toolkit knows about one artifact format, in two parts: the
:class:`Target` describes the format (suffix, precisions and their tolerances, options and their
rules, the demo platform) and exports it; its :class:`Runtime` opens an artifact inside a child
process (a thread count in, a predict callable out) and reads what the file states. The pipeline, the checker, the benchmark and the demo
generator ask only this registry, so a new target is one sub-package plus one line in
:data:`BUILTIN` (or a :func:`register` call from a plugin module).

Built-in targets are imported on first use, by name: asking for ``onnx`` never imports
coremltools or TensorFlow.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from convert.errors import ArgumentError, ConvertError, MissingPackage, UsageError

if TYPE_CHECKING:
    from convert.io.scratch import Scratch
    from convert.io.staging import Staging
    from convert.parity import Tolerance
    from convert.source import ModelSource


@dataclass(frozen=True)
class Builtin:
    """Where a built-in target lives, and the install extra its toolchain comes with.

    ``needs`` are the top-level modules that extra provides; they are looked up (not imported)
    before any work, so a missing toolchain is one line naming the ``pip install`` that adds it.
    """

    module: str
    extra: str | None = None
    needs: tuple[str, ...] = ()


BUILTIN: dict[str, Builtin] = {
    "onnx": Builtin("convert.onnx.target"),
    "coreml": Builtin("convert.coreml.target", "coreml", ("coremltools",)),
    "tflite": Builtin("convert.tflite.target", "tflite", ("onnx2tf", "tensorflow", "tf_keras", "ai_edge_litert")),
    "coreai": Builtin("convert.coreai.target", "coreai", ("coreai_torch", "coreai", "coreai_opt")),
}
"""Target name → its module (defining ``TARGET``) and extra; the one line a built-in target adds."""

Log = Callable[[str], None]
Step = Callable[[], object]


@dataclass(frozen=True)
class TargetOption:
    """An option only some targets take (``min_ios``): the CLI turns each into a flag.

    ``choices`` None means free text (a number, a list of names), which the target parses in
    :meth:`Target.resolve_options`.
    """

    name: str
    choices: tuple[str, ...] | None
    default: str
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class PlainBaseline:
    """A target's plain conversion (its toolchain's defaults), which ``shvit-bench`` measures ours against."""

    precision: str
    description: str
    not_comparable: str = ""
    """Why its outputs cannot be checked against PyTorch, if they cannot."""


@dataclass(frozen=True)
class ArtifactFacts:
    """What an artifact's own file says about it (``None`` where it does not say)."""

    input_size: int | None = None
    num_classes: int | None = None
    precision: str | None = None
    ops: int | None = None
    """Ops run per prediction (constants and load-time weight decompression excluded)."""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExportRecord:
    """What :meth:`Target.export` wrote, under the keys every target shares (the sidecar's ``export`` section).

    Readers (the checker, the demo generator, a user's script) find the input, the output's class
    count, the int8 report and a one-line description in the same place whatever the format.
    """

    input: Mapping[str, Any]
    """The model's input: ``name``, ``layout``, ``dtype`` (or ``type`` for an image input) and the value range."""
    output: Mapping[str, Any]
    """The logits: ``name`` and ``classes``."""
    contents: str | None = None
    """What the artifact holds when that is not just its precision (which ops stayed float after int8)."""
    int8: Mapping[str, Any] | None = None
    """The int8 engine's report (:meth:`convert.int8.report.Int8Report.as_dict`), for int8 exports."""
    details: Mapping[str, Any] = field(default_factory=dict)
    """What only this target records: op counts, partitions, storage types..."""

    def as_dict(self) -> dict[str, Any]:
        return {"input": dict(self.input), "output": dict(self.output), "contents": self.contents, "int8": self.int8, **self.details}


@dataclass(frozen=True)
class ExportContext:
    """Everything a target's :meth:`Target.export` needs, resolved and validated by the pipeline."""

    source: ModelSource
    precision: str
    options: Mapping[str, Any]
    stem: str
    scratch: Scratch
    calib_pixels: np.ndarray | None = None
    calib_description: str | None = None
    progress: bool = False
    log: Log = field(default=lambda _message: None)

    @property
    def input_size(self) -> int:
        return self.source.input_size

    @property
    def random_weights(self) -> bool:
        """A try-out on random weights: accuracy gates that need a trained model do not apply."""
        return self.source.random_weights

    @property
    def name(self) -> str:
        """Display name of the model, e.g. ``SHViT-S3``."""
        return "SHViT" if self.source.variant == "auto" else f"SHViT-{self.source.variant.upper()}"


@dataclass(frozen=True)
class Loaded:
    """An artifact loaded in its runtime, inside a child process: parity runs call :attr:`predict`, timing :meth:`step`."""

    predict: Callable[[np.ndarray], np.ndarray]
    """uint8 RGB pixels (N, H, W, 3) → float32 logits (N, classes)."""
    runtime: str
    """The runtime as reports name it (version, delegate, threads)."""
    prepare: Callable[[np.ndarray], Step] | None = None
    """For timing: ``pixels`` → one prediction with its input already in the runtime's form (default: :attr:`predict`)."""

    def step(self, pixels: np.ndarray) -> Step:
        """One timed prediction of ``pixels``, as a callable."""
        if self.prepare is not None:
            return self.prepare(pixels)
        return lambda: self.predict(pixels)


@runtime_checkable
class Runtime(Protocol):
    """What runs an artifact of one format, inside a child process (:mod:`convert.io.child`); heavy imports inside."""

    def open(self, path: Path, *, threads: int | None) -> Loaded:
        """Load ``path``; ``threads`` None is the runtime's default."""

    def inspect(self, path: Path) -> ArtifactFacts:
        """The facts the artifact's own file states."""

    def latency_unavailable(self) -> str | None:
        """Why host latency cannot be measured on this machine (Core ML off macOS), or None."""


class RuntimeBase:
    """Defaults for a runtime that reads nothing from its files and can be timed anywhere."""

    def inspect(self, path: Path) -> ArtifactFacts:
        return ArtifactFacts()

    def latency_unavailable(self) -> str | None:
        return None


@runtime_checkable
class Target(Protocol):
    """One artifact format. Attributes are data; methods do the work (heavy imports inside them)."""

    name: str
    suffix: str
    bundle: bool
    """Whether the artifact is a folder (``.mlpackage``) rather than one file."""
    summary: str
    """One line for ``--help``: what the artifact is and where it runs."""
    precisions: tuple[str, ...]
    default_precision: str
    calibrated: frozenset[str]
    """Precisions that calibrate activations on images (need ``calib``)."""
    unavailable: Mapping[str, str]
    """Precisions this target cannot produce here, each with the reason a user is told."""
    tolerances: Mapping[str, Tolerance]
    options: tuple[TargetOption, ...]
    demo_platform: str | None
    """The demo app ``shvit-demo`` builds around this artifact (a key of :data:`mobile_demo.generate.GENERATORS`:
    ``ios``, ``ios-coreai``, ``android``), if any."""

    def resolve_options(self, precision: str, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every option's value for ``precision``: defaults filled in, impossible combinations refused
        (an :class:`~convert.errors.ArgumentError` naming the option), never silently rewritten."""

    def extra_files(self, stem: str) -> list[str]:
        """Files written beside ``<stem><suffix>`` (a labels file, say)."""

    def export(self, context: ExportContext, staging: Staging) -> ExportRecord:
        """Write ``staging.path(stem + suffix)`` (and :meth:`extra_files`); what it wrote, for the sidecar."""

    @property
    def runtime(self) -> Runtime:
        """What opens and reads this format's artifacts (imported on use: a target module stays light)."""

    # Optional capabilities, declared: TargetBase says "not offered" for each.
    baseline: PlainBaseline | None
    """The plain conversion ``shvit-bench`` measures ours against (:meth:`export_plain` writes it), if any."""
    per_layer_check: bool
    """Whether :meth:`per_layer` compares this target's int8 artifacts op by op."""

    def export_plain(self, source: ModelSource, path: Path, *, scratch: Scratch, log: Log) -> None:
        """Write :attr:`baseline`'s model of ``source`` to ``path``."""

    def per_layer(self, artifact: Path, source: ModelSource, pixels: np.ndarray, *, scratch: Scratch, log: Log) -> tuple[list[Any], str]:
        """Every op of the int8 ``artifact`` against its float twin, converted from ``source`` by the same converter
        (so the ops share names): :class:`convert.int8.report.LayerError` rows in graph order, and what the twin is."""


class TargetBase:
    """Defaults for what a target need not have: no options, calibration, extra files, demo app or optional capability."""

    bundle = False
    calibrated: frozenset[str] = frozenset()
    unavailable: Mapping[str, str] = {}
    options: tuple[TargetOption, ...] = ()
    demo_platform: str | None = None
    baseline: PlainBaseline | None = None
    per_layer_check = False

    def resolve_options(self, precision: str, given: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def extra_files(self, stem: str) -> list[str]:
        return []

    def export_plain(self, source: ModelSource, path: Path, *, scratch: Scratch, log: Log) -> None:
        raise ConvertError(f"{type(self).__name__} offers no plain baseline")

    def per_layer(self, artifact: Path, source: ModelSource, pixels: np.ndarray, *, scratch: Scratch, log: Log) -> tuple[list[Any], str]:
        raise ConvertError(f"{type(self).__name__} offers no per-layer comparison")


_registered: dict[str, Target] = {}


def register(target: Target) -> Target:
    """Add a target (a plugin module calls this at import); its name and suffix must be new."""
    if not isinstance(target, Target):
        raise TypeError(f"{target!r} does not implement convert.targets.Target")
    if target.name in names() or target.suffix in suffixes():
        raise ValueError(f"a target named {target.name!r} or with suffix {target.suffix!r} is already registered")
    _registered[target.name] = target
    return target


def unregister(name: str) -> None:
    _registered.pop(name, None)


def names() -> tuple[str, ...]:
    return (*BUILTIN, *_registered)


def get(name: str) -> Target:
    """The target called ``name`` (``onnx``, ``coreml`` ...); an :class:`ArgumentError` listing the known ones."""
    key = str(name).strip().lower()
    if key in _registered:
        return _registered[key]
    if key not in BUILTIN:
        raise ArgumentError(f"unknown target {name!r}: choose one of {', '.join(names())}", argument="target")
    return importlib.import_module(BUILTIN[key].module).TARGET


def missing_toolchain(name: str) -> list[str]:
    """The modules target ``name``'s extra provides that this environment lacks (none for plugins)."""
    builtin = BUILTIN.get(name)
    return [module for module in (builtin.needs if builtin else ()) if not _installed(module)]


def require_toolchain(target: Target) -> None:
    """A :class:`MissingPackage` naming the install command if ``target``'s toolchain is not installed."""
    missing = missing_toolchain(target.name)
    if missing:
        extra = BUILTIN[target.name].extra
        what = f"{', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed here"
        raise MissingPackage(f"the {target.name} target needs {what}: pip install 'shvit-mobile[{extra}]'")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def available() -> list[Target]:
    """Every target whose code is present (a target module is light: its toolchain loads on use)."""
    return [get(name) for name in names()]


def suffixes() -> dict[str, str]:
    """Artifact suffix → target name, for every known target."""
    return {target.suffix: target.name for target in available()}


def for_path(path: Path | str) -> Target:
    """The target that wrote ``path``, by its suffix; an :class:`ArgumentError` naming the known suffixes."""
    suffix = Path(path).suffix.lower()
    known = suffixes()
    if suffix not in known:
        raise ArgumentError(f"{path}: unknown artifact type {suffix or '(no suffix)'}: pass {suffix_list()} files", argument="artifacts")
    return get(known[suffix])


def suffix_list() -> str:
    """``.onnx, .tflite or .mlpackage``: every artifact suffix for a message, single files before folders."""
    items = [t.suffix for t in sorted(available(), key=lambda t: t.bundle)]
    return ", ".join(items[:-1]) + f" or {items[-1]}" if len(items) > 1 else items[0]


def all_precisions() -> list[str]:
    """Every precision some target offers (the CLI's ``--precision`` choices)."""
    return list(dict.fromkeys(p for target in available() for p in (*target.precisions, *target.unavailable)))


def option_table() -> dict[str, tuple[TargetOption, list[str]]]:
    """Option name → (its definition, the targets that take it): one CLI flag per option."""
    table: dict[str, tuple[TargetOption, list[str]]] = {}
    for target in available():
        for option in target.options:
            table.setdefault(option.name, (option, []))[1].append(target.name)
    return table


def resolve_precision(target: Target, precision: str | None) -> str:
    """``precision`` checked against ``target`` (its default when None)."""
    if not precision:
        return target.default_precision
    if precision in target.unavailable:
        raise UsageError(f"{precision} is not available for {target.name}: {target.unavailable[precision]}", argument="precision")
    if precision not in target.precisions:
        raise UsageError(
            f"precision {precision!r} is not available for {target.name}: choose one of {', '.join(target.precisions)}",
            argument="precision",
        )
    return precision
