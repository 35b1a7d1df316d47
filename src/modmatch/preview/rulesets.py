"""The command's rule sets: each framework's matcher, asked about a model's modules the way that
framework asks (which modules, and whether it passes the short name or the full one)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import automodel, megatron_bridge
from ..engine.patternset import PatternSet
from ..engine.suffixset import SuffixSet
from ..engine.syntax import AUTOMODEL, REGEX, SEED, Syntax, quietly
from ..errors import InputError, PatternError
from ..frontends import front_ends
from ..inputs.models import Model
from ..matcher import ModuleMatcher
from ..peft import PeftMatcher, default_targets, rules_version
from ..reference.peft import TASK_TYPES, release
from ..reference.peft_defaults import MISSING
from . import peft as peft_preview
from .peft import Preview, preview
from .report import NameRuleSelects

__all__ = ["CALLS", "RULES", "Options", "RuleSet", "Verdict", "rule_set"]

RULES = ("seed", "automodel", "megatron-bridge", "peft")
CALLS = ("split", "full-name")
# How each framework calls its matcher: Megatron-Bridge's walk passes the short name and the
# parent's path; Automodel's apply_lora_to_linear_modules passes the full name, no prefix.
_DEFAULT_CALL = {"seed": "split", "automodel": "full-name", "megatron-bridge": "split"}


@dataclass(frozen=True)
class Options:
    """What the command line (or a PEFT config file) asks for."""

    targets: list[str] | None = None
    excludes: list[str] | None = None
    target_regex: str | None = None
    exclude_regex: str | None = None
    all_linear: bool = False
    causal_lm: bool = False
    call: str | None = None
    layers_to_transform: list[int] | int | None = None
    layers_pattern: list[str] | str | None = None
    target_parameters: list[str] | None = None
    modules_to_save: list[str] | None = None
    task_type: str | None = None
    peft_version: str | None = None
    lora_dropout: float = 0.0
    # The dropout PEFT's ParamWrapper sees, where a front-end changes it (Axolotl: 0), and the
    # LoraConfig options it refuses that are set (fan_in_fan_out, lora_bias, use_dora).
    parameter_dropout: float | None = None
    flags: tuple[str, ...] = ()
    # Where a training front-end built the LoraConfig: its name, and the config's fields.
    built_by: str | None = None
    built: dict[str, Any] | None = None


@dataclass(frozen=True)
class Verdict:
    """Why one module is selected or not."""

    matched: bool
    rule: str
    pattern: str | None = None


class RuleSet:
    """One framework's rules over a model: what it selects, why, and what each pattern selects."""

    name: str
    call: str
    defaults_used: str | None = None
    # PEFT's rules only: the release whose rules apply, the config's task type, and the
    # training front-end that built the config (with the fields it built).
    peft_version: str | None = None
    task_type: str | None = None
    built_by: str | None = None
    built: dict[str, Any] | None = None
    # Whether the patterns are names and wildcards, for which close names make suggestions
    # (not a PEFT regex).
    literal_patterns = True

    @property
    def patterns(self) -> list[str]:
        """The patterns counted one by one: the targets, or without targets the excludes."""
        raise NotImplementedError

    @property
    def excludes(self) -> list[str]:
        """The exclude patterns, each counted by :meth:`unmatched_excludes`."""
        return []

    def unmatched_excludes(self, model: Model) -> list[str]:
        """The exclude patterns that exclude no module the framework asks about."""
        excludes = self.excludes
        if not excludes:
            return []
        selects = self.selects_excluded()
        counts = [0] * len(excludes)
        for name in self.asked(model):
            for index in set(selects(name)):
                counts[index] += 1
        return [pattern for pattern, count in zip(excludes, counts, strict=True) if not count]

    def selects_excluded(self) -> Callable[[str], Iterable[int]]:
        """The indices of :attr:`excludes` that rule out one name."""
        return self.selects(self.excludes)

    def on(self, model: Model) -> RuleSet:
        """These rules as they apply to ``model`` (PEFT fills in its default targets)."""
        return self

    def moved(self, model: Model) -> dict[str, list[str]]:
        """Target patterns the framework replaced by parameters on this model (PEFT's
        transformers-5 rewriting), with the parameter names put in their place."""
        return {}

    def config_shown(self) -> dict[str, Any]:
        """The config the framework builds, as shown (PEFT's rules)."""
        return {}

    def selected(self, model: Model) -> list[str]:
        raise NotImplementedError

    def explain(self, name: str, is_linear: bool | None, model: Model) -> Verdict:
        raise NotImplementedError

    def selects(self, patterns: list[str] | None = None) -> Callable[[str], Iterable[int]]:
        """The indices of ``patterns`` (default :attr:`patterns`) selecting one name, as this
        rule set reads them."""
        raise NotImplementedError

    def selector(self, pattern: str) -> Callable[[str], bool]:
        """Whether one more pattern, read by these rules, selects a name (for suggestions)."""
        try:
            with quietly():
                selects = self.selects([pattern])
        except PatternError:
            return lambda name: False
        return lambda name: bool(list(selects(name)))

    def selected_parameters(self, model: Model) -> list[str] | None:
        """The ``module.parameter`` names ``target_parameters`` selects (PEFT only), where the
        model's parameters are known."""
        return None

    def notes(self, model: Model) -> list[str]:
        """What the preview could not show on this model."""
        return []

    def rewritten(self, model: Model) -> dict[str, list[str]] | None:
        """What the framework adapts beyond (widened) or short of (dropped) the patterns' literal
        selection, where it rewrites them (PEFT on transformers-5 MoE models)."""
        return None

    def asked(self, model: Model) -> list[str]:
        """The names the framework asks its matcher about."""
        return [name for name, _ in self.asked_modules(model)]

    def asked_modules(self, model: Model) -> list[tuple[str, bool]]:
        """``(name, is Linear)`` of the modules the framework asks its matcher about."""
        return model.modules


def _modules() -> tuple[Any, Any]:
    from torch import nn

    return nn.Linear(1, 1, device="meta"), nn.Identity()


class _NameRuleSet(RuleSet):
    """The seed, Automodel and Megatron-Bridge: a ``ModuleMatcher`` whose patterns select a
    module by the name passed to ``match`` or by its full name."""

    def __init__(self, name: str, matcher: Any, call: str, syntax: Syntax) -> None:
        self.name, self.matcher, self.call, self._syntax = name, matcher, call, syntax

    def arguments(self, name: str) -> tuple[str | None, str | None]:
        """``(name, prefix)`` as the framework passes them to ``match``."""
        if self.call == "full-name":
            return name, None
        prefix, _, short = name.rpartition(".")
        return short, prefix

    @property
    def patterns(self) -> list[str]:
        return list(self.matcher.target_modules or self.matcher.exclude_modules or [])

    @property
    def excludes(self) -> list[str]:
        return list(self.matcher.exclude_modules or [])

    def selected(self, model: Model) -> list[str]:
        linear, other = _modules()
        match, arguments = self.matcher.match, self.arguments
        asked = self.asked_modules(model)
        return [
            name
            for name, is_linear in map(asked.__getitem__, self.candidates(asked))
            if match(linear if is_linear else other, *arguments(name))
        ]

    def candidates(self, asked: list[tuple[str, bool]]) -> Sequence[int]:
        """The indices of the asked modules ``match`` may select: all, unless the matcher can
        rule some out in one pass."""
        return range(len(asked))

    def selects(self, patterns: list[str] | None = None) -> Callable[[str], Iterable[int]]:
        patterns = self.patterns if patterns is None else patterns
        compiled = PatternSet(patterns, cache_size=0, syntax=self._syntax)
        return NameRuleSelects(patterns, compiled, split=self.call == "split")

    def explain(self, name: str, is_linear: bool | None, model: Model) -> Verdict:
        if name not in set(self.asked(model)):
            return Verdict(False, f"not asked: {self.name} asks only about Linear modules")
        linear, other = _modules()
        module = linear if is_linear else other
        short, prefix = self.arguments(name)
        result = self.matcher.match(module, short, prefix)
        hits = sorted(set(self.selects()(name)))
        decided = self.patterns[hits[0]] if hits else None
        matched = bool(result)
        if self.matcher.target_modules:
            rule = "target pattern" if matched else "no target matched"
            return Verdict(matched, rule, decided if matched else None)
        if decided is not None:
            return Verdict(False, "excluded", decided)
        return Verdict(matched, "Linear, not excluded" if matched else "not Linear")


class _SeedRuleSet(_NameRuleSet):
    def selected(self, model: Model) -> list[str]:
        names = [name for name, _ in model.modules]
        chosen = None
        if self.call == "split":  # select_indices splits names as a module walk does
            chosen = self.matcher.select_indices(names, lambda: [bool(f) for _, f in model.modules])
        if chosen is None:  # decided module by module, as the seed does
            return super().selected(model)
        return [names[index] for index in chosen]

    def explain(self, name: str, is_linear: bool | None, model: Model) -> Verdict:
        linear, other = _modules()
        short, prefix = self.arguments(name)
        found = self.matcher.explain(short, prefix, linear if is_linear else other)
        return Verdict(found.matched, found.rule.value, found.pattern)


class _MegatronBridgeRuleSet(_NameRuleSet):
    def candidates(self, asked: list[tuple[str, bool]]) -> Sequence[int]:
        if self.call != "split":  # candidates assumes the split call, as Megatron-Bridge's walk
            return super().candidates(asked)
        found: Sequence[int] = self.matcher.candidates([name for name, _ in asked])
        return found

    def arguments(self, name: str) -> tuple[str | None, str | None]:
        # Megatron-Bridge's walk asks about the root with neither name nor prefix.
        return super().arguments(name) if name else (None, None)


class _AutomodelRuleSet(_NameRuleSet):
    def asked_modules(self, model: Model) -> list[tuple[str, bool]]:
        # Automodel 0.7.0 hands only Linear modules to its matcher.
        return [(name, is_linear) for name, is_linear in model.modules if is_linear]


class _PeftRuleSet(RuleSet):
    def __init__(
        self,
        matcher: PeftMatcher,
        lora_dropout: float = 0.0,
        parameter_dropout: float | None = None,
    ) -> None:
        self.name, self.call, self.matcher = "peft", "full-name", matcher
        self.peft_version, self.task_type = matcher.version, matcher.task_type
        self.lora_dropout = lora_dropout
        self.parameter_dropout = lora_dropout if parameter_dropout is None else parameter_dropout
        self.flags: tuple[str, ...] = ()
        self.literal_patterns = not isinstance(matcher.target_modules, str)
        self._previewed: tuple[Model, Preview] | None = None
        # Compiled here, not quietly: a regex that runs on re warns as the other rules' do.
        for regex in (matcher.target_modules, matcher.exclude_modules):
            if isinstance(regex, str) and not matcher.all_linear:
                PatternSet([regex], cache_size=0, syntax=REGEX)

    def on(self, model: Model) -> RuleSet:
        """PEFT's own targets for ``target_modules=None``, by the model's type."""
        matcher = self.matcher
        if matcher.target_modules is not None:
            return self
        version = matcher.version
        if model.model_type is None:
            if matcher.target_parameters:
                return self  # noted: see notes()
            raise InputError(
                "target_modules is null: PEFT fills in its default targets for the model type, "
                "which only a model built from its config gives"
            )
        if model.module is not None:
            rewritten = peft_preview.rewritten(matcher, model.module)
            if rewritten is not None and rewritten.target_modules is not None:
                return self  # PEFT rewrites None to no targets first: it fills in no defaults
        defaults = default_targets(model.model_type, version)
        if defaults is None:
            if matcher.target_parameters:
                return self
            raise InputError(
                f"PEFT {version} refuses this config on this model: {MISSING} "
                f"(it has no default target_modules for model type {model.model_type!r})"
            )
        found = _PeftRuleSet(
            matcher.with_targets(defaults), self.lora_dropout, self.parameter_dropout
        )
        found.built_by, found.built, found.flags = self.built_by, self.built, self.flags
        shown = defaults if isinstance(defaults, str) else " ".join(sorted(defaults))
        found.defaults_used = (
            f"target_modules is null: PEFT {version}'s defaults for model type "
            f"{model.model_type!r}: {shown}"
        )
        return found

    def preview(self, model: Model) -> Preview:
        """What ``get_peft_model`` does on this model (worked out once); raises Refused."""
        if self._previewed is None or self._previewed[0] is not model:
            names = [name for name, _ in model.modules]
            linear = {name for name, is_linear in model.modules if is_linear and name}
            linear.discard(model.output_embedding or "")
            found = preview(
                self.matcher, names, linear, model.module, self.parameter_dropout, self.flags
            )
            self._previewed = (model, found)
        return self._previewed[1]

    @property
    def patterns(self) -> list[str]:
        targets = self.matcher.target_modules
        if self.matcher.all_linear:
            return []  # not a pattern: PEFT's word for every Linear module
        if isinstance(targets, str):
            return [targets]
        return list(dict.fromkeys(targets or []))  # PEFT holds the entries as a set

    @property
    def excludes(self) -> list[str]:
        excludes = self.matcher.exclude_modules
        if isinstance(excludes, str):
            return [excludes]
        return list(dict.fromkeys(excludes or []))

    def selects_excluded(self) -> Callable[[str], Iterable[int]]:
        excludes = self.matcher.exclude_modules
        return self.selects(excludes if isinstance(excludes, str) else self.excludes)

    def moved(self, model: Model) -> dict[str, list[str]]:
        previewed = self.preview(model)
        targets = previewed.applied.target_modules
        if previewed.widened is None or isinstance(self.matcher.target_modules, str):
            return {}
        if not isinstance(targets, (set, list, tuple)):
            return {}
        added = set(previewed.applied.target_parameters or ()) - set(
            self.matcher.target_parameters or ()
        )
        return {pattern: sorted(added) for pattern in self.patterns if pattern not in targets}

    def config_shown(self) -> dict[str, Any]:
        """The LoraConfig fields that decide what PEFT wraps and refuses, None left out."""
        fields = {"peft_type": "LORA", **self.matcher.settings, "lora_dropout": self.lora_dropout}
        return {
            name: sorted(value) if isinstance(value, (set, frozenset)) else value
            for name, value in fields.items()
            if value is not None
        }

    def asked_modules(self, model: Model) -> list[tuple[str, bool]]:
        return [(name, is_linear) for name, is_linear in model.modules if name]  # not the root

    def selected(self, model: Model) -> list[str]:
        return self.preview(model).wrapped

    def selects(self, patterns: list[str] | str | None = None) -> Callable[[str], Iterable[int]]:
        """Indices into :attr:`patterns` (or ``patterns``: a list of entries, each once, or one
        regex)."""
        targets = self.matcher.target_modules if patterns is None else patterns
        if isinstance(targets, str):
            with quietly():  # warned of when the rule set was built
                compiled = PatternSet([targets], cache_size=0, syntax=REGEX)
            return compiled.matches
        entries = SuffixSet(dict.fromkeys(targets or []))
        index = {entry: i for i, entry in enumerate(entries.entries)}
        return lambda name: [index[entry] for entry in entries.matching(name)]

    def explain(self, name: str, is_linear: bool | None, model: Model) -> Verdict:
        if not name:
            return Verdict(False, "not asked: PEFT skips the root module")
        previewed = self.preview(model)
        if name in (previewed.dropped or ()):
            return Verdict(False, "dropped by PEFT's rewriting for transformers 5")
        rule, entry = previewed.applied.explain(name)
        found = previewed.applied.match(name)
        held = [p for p in previewed.parameters or () if p.rpartition(".")[0] == name]
        if held and not found:
            rule, entry, found = f"holds {held[0]} (target_parameters)", None, True
        if name in (previewed.widened or ()):
            rule += ", added by PEFT's rewriting for transformers 5"
        if self.matcher.all_linear and not found:
            if name == model.output_embedding:
                rule = "all-linear leaves out the output layer"
            elif not is_linear:
                rule = "not Linear: all-linear takes Linear and Conv1D modules"
        return Verdict(bool(found), rule, entry)

    def selected_parameters(self, model: Model) -> list[str] | None:
        if not self.preview(model).applied.target_parameters:
            return None
        return self.preview(model).parameters

    def rewritten(self, model: Model) -> dict[str, list[str]] | None:
        """The modules PEFT's transformers-5 rewriting adds and drops, where it rewrites."""
        previewed = self.preview(model)
        if previewed.widened is None or previewed.dropped is None:
            return None
        return {"widened": previewed.widened, "dropped": previewed.dropped}

    def notes(self, model: Model) -> list[str]:
        previewed = self.preview(model)
        notes = list(previewed.notes)
        flags = dict(model.modules)
        # Counted by the modules' own flags: the output layer is Linear, though "all-linear"
        # leaves it out.
        others = sum(1 for name in previewed.wrapped if not flags[name])
        if others and model.module is None:
            notes.append(
                f"{others:,} selected modules are not Linear: LoRA wraps Linear, Embedding, "
                "Conv and MultiheadAttention modules and PEFT refuses others (module types are "
                "known only on a model built from its config)"
            )
        pins = {end.TITLE: end.PEFT_PIN for end in front_ends().values()}
        pinned = pins.get(self.built_by or "")
        if pinned is not None and release(pinned) != release(self.matcher.version):
            notes.append(
                f"{self.built_by} pins PEFT {pinned}: these are PEFT {self.matcher.version}'s "
                f"rules (--peft-version {pinned} for its)"
            )
        elif pinned is not None:
            notes.append(f"PEFT {pinned} is the release {self.built_by} pins (--peft-version V)")
        if self.matcher.layers_to_transform is not None and self.patterns:
            notes.append(
                "the per-pattern counts are before layers_to_transform: the selection applies it"
            )
        if self.matcher.all_linear and model.module is None:
            notes.append(
                f"all-linear: {model.output_embedding!r} taken as the output layer PEFT leaves out"
            )
        return notes


def rule_set(rules: str, options: Options) -> RuleSet:
    """The chosen framework's matcher for ``options``; InputError names what does not fit."""
    if rules == "peft":
        return _peft(options)
    peft_only = [
        flag
        for flag, value in (
            ("--layers-to-transform", options.layers_to_transform),
            ("--layers-pattern", options.layers_pattern),
            ("--target-parameters", options.target_parameters),
            ("--modules-to-save", options.modules_to_save),
            ("--target-regex", options.target_regex),
            ("--exclude-regex", options.exclude_regex),
        )
        if value is not None
    ]
    if peft_only:
        raise InputError(f"{peft_only[0]} is a PEFT option: add --rules peft")
    call = options.call or _DEFAULT_CALL[rules]
    defaults = not options.targets and not options.excludes and not options.all_linear
    found: _NameRuleSet
    if rules == "seed":
        found = _SeedRuleSet("seed", _seed(options), call, SEED)
    elif rules == "automodel":
        found = _AutomodelRuleSet("automodel", _automodel(options), call, AUTOMODEL)
    else:
        found = _megatron_bridge(options, defaults, call)
    if defaults:
        name = {"seed": "the seed", "automodel": "Automodel"}.get(rules, "Megatron-Bridge")
        found.defaults_used = f"{name}'s default targets: " + " ".join(found.patterns)
        if rules != "automodel":
            found.defaults_used += " (Megatron-Core names; give -t for a Hugging Face model)"
    return found


def _megatron_bridge(options: Options, defaults: bool, call: str) -> _NameRuleSet:
    if options.causal_lm:
        raise InputError("--causal-lm: Megatron-Bridge's matcher has no is_causal_lm")
    if options.targets and options.excludes:
        # Megatron-Bridge asserts on this combination at the first module it is asked about.
        raise InputError(
            "--target and --exclude cannot be combined: "
            "Megatron-Bridge applies excludes only without targets"
        )
    # Megatron-Bridge reads empty target and exclude lists as "every linear layer".
    matcher = megatron_bridge.ModuleMatcher(exclude_modules=list(options.excludes or []))
    if not defaults:
        matcher.target_modules = list(options.targets or [])
    return _MegatronBridgeRuleSet("megatron-bridge", matcher, call, SEED)


def _seed(options: Options) -> ModuleMatcher:
    if options.targets and options.excludes:
        # The seed asserts on this combination at the first module it cannot decide otherwise.
        raise InputError(
            "--target and --exclude cannot be combined: excludes apply only without targets"
        )
    arguments: dict[str, Any] = {
        "match_all_linear": options.all_linear,
        "is_causal_lm": options.causal_lm,
    }
    if options.targets:
        arguments["target_modules"] = options.targets
    elif options.excludes or options.all_linear:
        arguments["target_modules"] = []
    if options.excludes:
        arguments["exclude_modules"] = options.excludes
    return ModuleMatcher(**arguments)


def _automodel(options: Options) -> automodel.ModuleMatcher:
    # Automodel logs its default and all-linear notices; the command reports them itself.
    quiet = logging.getLogger(automodel.__name__)
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return automodel.ModuleMatcher(
            target_modules=options.targets or [],
            exclude_modules=options.excludes or [],
            match_all_linear=options.all_linear,
            is_causal_lm=options.causal_lm,
        )
    finally:
        quiet.setLevel(level)


def _peft(options: Options) -> RuleSet:
    if options.call not in (None, "full-name"):
        raise InputError("--call split: PEFT always passes the full module name")
    if options.causal_lm:
        raise InputError("--causal-lm is not a PEFT option")
    try:
        version = rules_version(options.peft_version)
    except ValueError as error:
        raise InputError(str(error)) from error
    if options.targets and options.target_regex is not None:
        raise InputError("--target and --target-regex: PEFT takes a list or one regex, not both")
    if options.excludes and options.exclude_regex is not None:
        raise InputError("--exclude and --exclude-regex: PEFT takes a list or one regex, not both")
    targets: list[str] | str | None = (
        options.targets if options.targets is not None else options.target_regex
    )
    if options.all_linear:
        if targets:
            raise InputError("--all-linear replaces PEFT's target_modules: drop --target")
        targets = "all-linear"
    # LoraConfig's own checks, with its messages.
    if isinstance(options.target_parameters, str):
        raise InputError("`target_parameters` must be a list of strings or None.")
    if options.task_type is not None and options.task_type not in TASK_TYPES:
        raise InputError(
            f"Invalid task type: {options.task_type!r}. Must be one of the following task "
            f"types: {', '.join(TASK_TYPES)}"
        )
    if isinstance(targets, str) and options.layers_to_transform is not None:
        raise InputError("`layers_to_transform` cannot be used when `target_modules` is a str.")
    if isinstance(targets, str) and options.layers_pattern is not None:
        raise InputError("`layers_pattern` cannot be used when `target_modules` is a str.")
    # Up to 0.20 LoraConfig tests `not layers_to_transform`, which 0 and [] fail too.
    unset = options.layers_to_transform is None or (
        release(version) < (0, 21) and not options.layers_to_transform
    )
    if options.layers_pattern and unset:
        raise InputError(
            "When `layers_pattern` is specified, `layers_to_transform` must also be specified."
        )
    matcher = PeftMatcher(
        targets,
        exclude_modules=options.excludes or options.exclude_regex,
        modules_to_save=options.modules_to_save,
        layers_to_transform=options.layers_to_transform,
        layers_pattern=options.layers_pattern,
        target_parameters=options.target_parameters,
        task_type=options.task_type,
        version=version,
    )
    found = _PeftRuleSet(matcher, options.lora_dropout, options.parameter_dropout)
    found.built_by, found.built, found.flags = options.built_by, options.built, options.flags
    return found
