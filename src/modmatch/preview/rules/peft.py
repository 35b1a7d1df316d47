"""PEFT's rules, per release (0.17 to 0.21): ``check_target_module_exists`` on each full module
name, and what ``get_peft_model`` does with the config on the model (:mod:`..peft`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ...engine.patternset import PatternSet
from ...engine.suffixset import SuffixSet
from ...engine.syntax import REGEX, quietly
from ...errors import InputError, PatternError
from ...frontends import front_ends
from ...inputs.models import Model
from ...peft import PeftMatcher, default_targets, rules_version
from ...reference.peft import TASK_TYPES, release
from ...reference.peft_defaults import MISSING
from .. import peft as peft_preview
from ..peft import Preview, preview
from .base import Options, RuleSet, Verdict

__all__ = ["NAME", "build"]

NAME = "peft"


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
        self.regex_patterns = isinstance(matcher.target_modules, str)
        self._previewed: tuple[Model, Preview] | None = None
        # Compiled here, not quietly: a regex that runs on re warns as the other rules' do.
        for regex in (matcher.target_modules, matcher.exclude_modules):
            if isinstance(regex, str) and not matcher.all_linear:
                PatternSet([regex], cache_size=0, syntax=REGEX)

    def adapts_whole(self, model: Model) -> set[str]:
        """The modules beside Linear ones that PEFT's LoRA wraps (tuners/lora/layer.py's
        ``dispatch_default``: embeddings, convolutions, GPT-2's Conv1D, multi-head attention):
        selecting one is no slip."""
        if model.module is None:
            return set()
        from torch import nn
        from transformers.pytorch_utils import Conv1D

        kinds = (nn.Embedding, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.MultiheadAttention, Conv1D)
        return {name for name, module in model.module.named_modules() if isinstance(module, kinds)}

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
        found.built_as = self.built_as
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

    def selector(self, pattern: str) -> Callable[[str], bool]:
        """As the base's, but a pattern suggested for a regex target is a regex too."""
        if not self.regex_patterns:
            return super().selector(pattern)
        try:
            with quietly():
                selects = self.selects(pattern)
        except PatternError:
            return lambda name: False
        return lambda name: bool(list(selects(name)))

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


def build(options: Options) -> RuleSet:
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
    found.built_as = options.built_as
    return found
