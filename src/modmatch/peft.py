"""Hugging Face PEFT's target rules (releases 0.17 to 0.21), compiled once:
``check_target_module_exists`` and :class:`PeftMatcher`.

Answers are PEFT's (reference: :mod:`modmatch.reference.peft`) without importing PEFT: a str
is a regex the whole key must match (on RE2, or on ``re`` where only ``re`` can run it), list
entries are literal dotted suffixes, looked up in a hash set, and every answer is cached per key.
Patterns the engine cannot take (an invalid regex, an entry that is not a str) are answered by
PEFT's loop on ``re``, which fails, as PEFT does, only on the keys that reach them. The rules
are those of the installed PEFT where it is one of these releases, else of PEFT 0.21.2.
"""

from __future__ import annotations

import contextlib
import functools
import operator
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from types import SimpleNamespace
from typing import Any

from .engine.patternset import DEFAULT_CACHE_SIZE, PatternSet
from .engine.plans import Renting, build_cost
from .engine.suffixset import SuffixSet
from .engine.syntax import MODULES_TO_SAVE, REGEX, Syntax, quietly
from .errors import PatternError
from .fold import fold, to_regex
from .reference import peft as reference
from .reference.peft import Excluded
from .reference.peft_defaults import lora_default_targets

__all__ = [
    "Excluded",
    "PeftMatcher",
    "check_target_module_exists",
    "default_targets",
    "exact_target_modules",
    "installed_is",
    "installed_version",
    "rules_version",
]

_UNSEEN = object()
# What a PeftMatcher holds, in its constructor's order.
_FIELDS = (
    "target_modules",
    "exclude_modules",
    "modules_to_save",
    "layers_to_transform",
    "layers_pattern",
    "target_parameters",
    "task_type",
)
_ALL_LINEAR = "all-linear"
# PEFT shortens a target list this long before matching (MIN_TARGET_MODULES_FOR_OPTIMIZATION).
_SHORTENED_FROM = 20


@functools.cache
def installed_version() -> str | None:
    """The installed PEFT's version, or None where PEFT is not installed."""
    try:
        return metadata.version("peft")
    except metadata.PackageNotFoundError:
        return None


def rules_version(version: str | None = None) -> str:
    """The PEFT release whose rules apply: ``version`` when given (ValueError naming it where its
    rules are not known), else the installed PEFT's when known, else 0.21.2."""
    if version is not None:
        reference.release(version)
        return version
    installed = installed_version()
    if installed is not None:
        with contextlib.suppress(ValueError):
            reference.release(installed)
            return installed
    return reference.LATEST


def installed_is(version: str) -> bool:
    """Whether the installed PEFT is release ``version``, whose own functions then apply."""
    installed = installed_version()
    if installed is None:
        return False
    with contextlib.suppress(ValueError):
        return reference.release(installed) == reference.release(version)
    return False


def default_targets(model_type: str, version: str | None = None) -> set[str] | str | None:
    """What PEFT ``version`` (default: :func:`rules_version`) puts in place of
    ``target_modules=None`` on a model of ``model_type``: the installed PEFT's own table where it
    is that release, else the release's table restated; None where the type has no defaults."""
    version = rules_version(version)
    release = reference.release(version)
    table: Mapping[str, Any] = lora_default_targets(release)
    if installed_is(version):
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

        table = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
    found = table.get(model_type)
    return found if found is None or isinstance(found, str) else set(found)


class _OnRe:
    """Regexes of one PEFT syntax on Python's ``re``, run as PEFT runs them: in list order until
    one matches, each compiled when a key first reaches it, so that one which fails to compile
    (or warns) does so at the keys where PEFT's fails."""

    __slots__ = ("_compiled", "_regexes", "_whole")

    def __init__(self, patterns: list[str], syntax: Syntax) -> None:
        self._whole = syntax is REGEX
        self._regexes = [p if self._whole else reference.modules_to_save_regex(p) for p in patterns]
        self._compiled: list[Callable[[str], Any]] = []  # the leading regexes, compiled

    def match(self, key: str) -> bool:
        """Whether any of the regexes matches ``key`` as PEFT runs it."""
        compiled = self._compiled
        for run in compiled:
            if run(key) is not None:
                return True
        regexes = self._regexes
        while len(compiled) < len(regexes):
            regex = re.compile(regexes[len(compiled)])
            run = regex.fullmatch if self._whole else regex.match
            compiled.append(run)
            if run(key) is not None:
                return True
        return False


# How a config's regexes are built: the engine's PatternSet, or _OnRe.
_Regexes = Callable[[list[str], Syntax], "PatternSet | _OnRe"]


def _on_engine(patterns: list[str], syntax: Syntax) -> PatternSet:
    return PatternSet(patterns, syntax=syntax)


@dataclass(frozen=True)
class _Rules:
    """A config's patterns, each regex on the engine (or, for the rent, on ``re``)."""

    excludes: PatternSet | _OnRe | SuffixSet | None
    to_save: PatternSet | _OnRe | None
    targets: PatternSet | _OnRe | SuffixSet | None
    layers: Any  # layers_to_transform when the layer filter is on, else None


class PeftMatcher:
    """PEFT's decision for each module key, with every pattern compiled once; immutable.

    ``match(key)`` answers as ``check_target_module_exists`` of PEFT ``version`` does (default:
    :func:`rules_version`); ``select(model)`` lists the modules ``get_peft_model`` adapts and
    ``select_parameters(model)`` the ``module.parameter`` names ``target_parameters`` picks.
    """

    __slots__ = ("_cache", "_decide", "_excluded", "_release", "_rules", "_settings", "version")
    _cache: dict[str, bool | Excluded | None] | None
    _decide: Callable[[str], bool | Excluded | None]
    _excluded: Excluded  # or PEFT's own marker class, falsy the same way
    _release: tuple[int, int]
    _rules: _Rules | None
    _settings: SimpleNamespace
    version: str

    def __init__(
        self,
        target_modules: str | Iterable[str] | None = None,
        *,
        exclude_modules: str | Iterable[str] | None = None,
        modules_to_save: Iterable[str] | None = None,
        layers_to_transform: int | Iterable[int] | None = None,
        layers_pattern: str | Iterable[str] | None = None,
        target_parameters: Iterable[str] | None = None,
        task_type: str | None = None,
        version: str | None = None,
    ) -> None:
        version = rules_version(version)
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "_release", reference.release(version))
        settings = SimpleNamespace(
            target_modules=target_modules,
            exclude_modules=exclude_modules,
            modules_to_save=modules_to_save,
            layers_to_transform=layers_to_transform,
            layers_pattern=layers_pattern,
            target_parameters=target_parameters,
            task_type=task_type,
        )
        object.__setattr__(self, "_settings", settings)
        object.__setattr__(self, "_excluded", _excluded_marker())
        if _has_regex(settings):
            # A regex (a str target or exclude, modules_to_save): PEFT's own loop on re until
            # compiling has paid for itself (a single regex, or one with `\d` or `(?i)`, may
            # cost RE2 milliseconds to build, and PEFT's re answers it in under a microsecond).
            only = isinstance(target_modules, str) and _only_a_regex(settings)
            rent = _fullmatch(target_modules) if only else self._on_re()  # type: ignore[arg-type]
            plans = Renting(rent, self._bought, build_cost(_regexes(settings)))
            object.__setattr__(self, "_rules", None)
            object.__setattr__(self, "_cache", None)
            object.__setattr__(self, "_decide", lambda key: plans.answer(key))
            return
        rules = _compiled(settings)
        object.__setattr__(self, "_rules", rules)
        # Answers are remembered only where deciding runs Python's re (the layer filter, or
        # PEFT's own loop): the engine's pattern sets remember theirs, and a few literal
        # entries decide faster than a cache can be written.
        slow = rules is None or rules.layers is not None
        object.__setattr__(self, "_cache", {} if slow else None)
        # The everyday config, a few target entries and nothing else, is the entries' own rule.
        plain = (
            rules is not None
            and isinstance(rules.targets, SuffixSet)
            and rules.excludes is None
            and rules.to_save is None
            and rules.layers is None
        )
        object.__setattr__(self, "_decide", rules.targets.match if plain else self._by_rules)  # type: ignore[union-attr]

    def _bought(self) -> Callable[[str], bool | Excluded | None] | None:
        """The config on the engine, for :class:`~modmatch.engine.plans.Renting`; None where
        only PEFT's own loop answers it exactly."""
        rules = _compiled(self._settings)
        if rules is None:
            return None
        object.__setattr__(self, "_rules", rules)
        return self._by_rules

    def _on_re(self) -> Callable[[str], bool | Excluded | None]:
        """The rent for a config holding a regex: PEFT's loop, each regex on ``re`` compiled at
        its first key (PEFT's own first call compiles it into re's cache), each list a
        :class:`SuffixSet`; PEFT's loop itself where an entry is not a str."""
        rules = _compiled(self._settings, _OnRe)
        return self._by_reference if rules is None else functools.partial(self._apply, rules)

    def _compiled_rules(self) -> _Rules | None:
        """The config on the engine, compiled now if it was not yet."""
        if self._rules is None:
            object.__setattr__(self, "_rules", _compiled(self._settings))
        return self._rules

    @classmethod
    def from_config(cls, config: Any, *, version: str | None = None) -> PeftMatcher:
        """The matcher for a ``peft.LoraConfig``, any object with its attributes, or the dict
        read from an ``adapter_config.json``."""
        if isinstance(config, Mapping):
            fields = {name: config.get(name) for name in _FIELDS}
        else:
            fields = {name: getattr(config, name, None) for name in _FIELDS}
        return cls(**fields, version=version)

    @property
    def settings(self) -> dict[str, Any]:
        """The config fields this matcher was built from, by name."""
        return dict(vars(self._settings))

    def __getattr__(self, name: str) -> Any:
        if name in _FIELDS:
            return getattr(self._settings, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"PeftMatcher is immutable: build a new one (or use with_targets) to change {name}"
        )

    def match(self, key: str) -> bool | Excluded | None:
        """True when PEFT adapts the module ``key``; a falsy excluded marker (PEFT's own
        ``_ExcludedModule`` when PEFT is loaded) when its excludes or ``modules_to_save`` rule
        it out; False or None, as PEFT, otherwise. Where PEFT returns a ``re.Match``, True."""
        if type(key) is not str:
            return self._by_reference(key)  # PEFT's own errors, or its answer
        cache = self._cache
        if cache is None:
            return self._decide(key)
        found = cache.get(key, _UNSEEN)
        if found is _UNSEEN:
            if len(cache) >= DEFAULT_CACHE_SIZE:
                cache.clear()  # emptied when full, as PatternSet's caches are
            found = cache[key] = self._decide(key)
        return found  # type: ignore[return-value]

    def _by_rules(self, key: str) -> bool | Excluded | None:
        """PEFT's rules in its order, each pattern on the engine."""
        rules = self._rules
        if rules is None:
            return self._by_reference(key)
        return self._apply(rules, key)

    def _apply(self, rules: _Rules, key: str) -> bool | Excluded | None:
        """PEFT's rules in its order, on ``rules``."""
        if rules.excludes is not None and rules.excludes.match(key):
            return self._excluded
        if rules.to_save is not None and rules.to_save.match(key):
            return self._excluded
        targets = rules.targets
        if targets is None:
            return False  # only parameters are targeted
        if not isinstance(targets, SuffixSet):
            return targets.match(key) or None  # PEFT: a Match, or None
        if targets.equals(key):
            return True  # an exact full name skips the layer filter
        found = targets.ends_with(key)
        if not found or rules.layers is None:
            return found
        index = reference.layer_index(key, self._settings.layers_pattern, self._release)
        if index is None:
            return False
        return index == rules.layers if isinstance(rules.layers, int) else index in rules.layers

    def _by_reference(self, key: Any) -> bool | Excluded | None:
        found = reference.check_target_module_exists(self._settings, key, self._release)
        if isinstance(found, Excluded):
            return self._excluded
        return True if isinstance(found, re.Match) else found

    def explain(self, key: str) -> tuple[str, Any]:
        """Which of PEFT's rules decides ``key``, and the entry (or regex) that decided it."""
        found = self.match(key)
        rules = self._compiled_rules()
        if rules is None:
            return "PEFT's rules on re (a pattern the engine cannot take)", None
        if found is self._excluded:
            if rules.excludes is not None and rules.excludes.match(key):
                return "excluded", _first_entry(rules.excludes, key)
            return "in modules_to_save", _first_entry(rules.to_save, key)
        targets = rules.targets
        if targets is None:
            return "no target_modules", None
        entry = _first_entry(targets, key)
        if not isinstance(targets, SuffixSet):
            return ("target regex" if found else "target regex does not match"), entry
        if targets.equals(key):
            return "exact full name (no layer filter)", key
        if entry is None:
            return "no target entry", None
        if not found:
            return "layer index not in layers_to_transform", entry
        return "target entry" + (", layer index kept" if rules.layers is not None else ""), entry

    def for_model(self, model: Any) -> PeftMatcher:
        """This matcher as ``get_peft_model`` applies it to ``model``: ``"all-linear"`` expanded
        to the model's Linear and Conv1D modules but the output layer, and a target list of 20
        or more entries shortened to the suffixes that tell its modules apart, as PEFT does
        (which makes full names go through the layer filter)."""
        names = [name for name, _ in model.named_modules()]
        linear = reference.all_linear_names(model, self.task_type) if self.all_linear else set()
        return self.as_applied(names, linear)

    @property
    def all_linear(self) -> bool:
        """Whether the targets are PEFT's ``"all-linear"`` (any case)."""
        targets = self.target_modules
        return isinstance(targets, str) and targets.lower() == _ALL_LINEAR

    def as_applied(self, names: list[str], all_linear: set[str]) -> PeftMatcher:
        """:meth:`for_model` for a model known by its module ``names``, where ``all_linear``
        is what ``"all-linear"`` stands for in it."""
        targets = all_linear if self.all_linear else self.target_modules
        targets = _shortened(targets, names)
        return self if targets is self.target_modules else self.with_targets(targets)

    def select(self, model: Any) -> list[str]:
        """Names of the modules ``target_modules`` selects on ``model`` as ``get_peft_model``
        applies it, in ``named_modules()`` order. Not the transformers-5 rewriting of MoE
        configs, nor the holders of ``target_parameters``, nor PEFT's refusals: for those,
        :func:`modmatch.preview.peft.preview`. PEFT's default targets for
        ``target_modules=None`` are not known here."""
        match = self.for_model(model).match
        return [name for name, _ in model.named_modules() if name and match(name)]

    def select_parameters(self, model: Any) -> list[str]:
        """The ``module.parameter`` names ``target_parameters`` selects, as PEFT matches them."""
        if not self.target_parameters:
            return []
        wanted = SuffixSet(sorted(set(self.target_parameters)))
        return [
            key
            for module_name, module in model.named_modules()
            for parameter_name, _ in module.named_parameters(recurse=False)
            if wanted.match(key := f"{module_name}.{parameter_name}")
        ]

    def with_targets(self, target_modules: str | Iterable[str] | None) -> PeftMatcher:
        """The same matcher with other ``target_modules``."""
        settings = self.settings
        return PeftMatcher(
            target_modules,
            **{name: settings[name] for name in _FIELDS[1:]},
            version=self.version,
        )

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={value!r}" for name, value in vars(self._settings).items() if value is not None
        )
        return f"PeftMatcher({fields}, version={self.version!r})"


def _compiled(settings: SimpleNamespace, regexes: _Regexes = _on_engine) -> _Rules | None:
    """The config with its regexes built by ``regexes``; None where only PEFT's own loop
    answers it exactly."""
    if settings.target_modules is None and settings.target_parameters is None:
        return None  # PEFT fails on `key in None`, for the keys that get that far
    try:
        with quietly():  # PEFT runs every pattern on re, and never warns of one
            to_save = settings.modules_to_save
            excludes, targets = settings.exclude_modules, settings.target_modules
            return _Rules(
                _rule(excludes, regexes) if excludes else None,
                regexes(list(to_save), MODULES_TO_SAVE) if to_save else None,
                None if targets is None else _rule(targets, regexes),
                _layer_filter(settings.layers_to_transform),
            )
    except (PatternError, TypeError):
        # An invalid regex, or an entry that is not a str: PEFT fails (or formats the entry)
        # only when it reaches it, key by key.
        return None


def _has_regex(settings: SimpleNamespace) -> bool:
    """Whether deciding the config runs a regex: a str target or exclude, or modules_to_save."""
    return (
        isinstance(settings.target_modules, str)
        or isinstance(settings.exclude_modules, str)
        or bool(settings.modules_to_save)
    )


def _only_a_regex(settings: SimpleNamespace) -> bool:
    """Whether the config is a str target and nothing else PEFT reads before it."""
    return (
        isinstance(settings.target_modules, str)
        and not settings.exclude_modules
        and not settings.modules_to_save
    )


def _fullmatch(regex: str) -> Callable[[str], bool | None]:
    """PEFT's answer for a str target alone: ``re.fullmatch`` (True for its match, else None),
    compiled on the first key, where PEFT's ``re`` first fails on an invalid one."""
    compiled: list[Callable[[str], re.Match[str] | None]] = []

    def rent(key: str) -> bool | None:
        if not compiled:
            compiled.append(re.compile(regex).fullmatch)
        return True if compiled[0](key) else None

    return rent


def _regexes(settings: SimpleNamespace) -> int:
    """How many regexes compiling the config builds (for the expected cost of building)."""
    to_save = settings.modules_to_save
    try:
        saved = len(to_save) if to_save else 0
    except TypeError:
        saved = 1
    return (
        saved + isinstance(settings.target_modules, str) + isinstance(settings.exclude_modules, str)
    )


def _rule(patterns: str | Iterable[str], regexes: _Regexes) -> PatternSet | _OnRe | SuffixSet:
    """A str is one regex for the whole key; anything else is a collection of literal entries."""
    if isinstance(patterns, str):
        return regexes([patterns], REGEX)
    return SuffixSet(patterns)


def _layer_filter(layers: Any) -> Any:
    """``layers_to_transform`` where PEFT filters by layer index: not None, and not ``[]``."""
    using = layers is not None and (len(layers) != 0 if isinstance(layers, list) else True)
    return layers if using else None


def _first_entry(rule: Any, key: str) -> Any:
    """The entry (or regex) of an engine rule that selects ``key``: ``explain`` compiles the
    config on the engine, so ``rule`` is a PatternSet or a SuffixSet."""
    if isinstance(rule, SuffixSet):
        return next(iter(rule.matching(key)), None)
    hits = rule.matches(key)
    return rule.patterns[hits[0]] if hits else None


def _excluded_marker() -> Any:
    """PEFT's own marker class when PEFT is loaded, since its ``inject_adapter`` tells excluded
    keys by that class; otherwise modmatch's, which is falsy the same way."""
    tuners = sys.modules.get("peft.tuners.tuners_utils")
    return Excluded() if tuners is None else tuners._ExcludedModule()


def _shortened(targets: Any, names: list[str]) -> Any:
    """PEFT's shortening of a long target list (``_find_minimal_target_modules``): the fewest
    dotted suffixes that select the same modules among ``names``, or the list unchanged."""
    if not isinstance(targets, (list, set)) or len(targets) < _SHORTENED_FROM:
        return targets
    if "" in targets:
        raise ValueError("target_modules should not contain an empty string.")
    selected = SuffixSet(targets)
    others = {suffix for name in names if not selected.match(name) for suffix in _suffixes(name)}
    # PEFT's loop keeps, whatever its order, each entry's shortest suffix that no other module
    # ends with: a kept suffix covering an entry is that entry's shortest one. The entry itself
    # always qualifies, since a module ending with it is selected.
    shorter = {_shortest_suffix(entry, others) for entry in targets}
    return shorter if len(shorter) < len(targets) else targets


def _shortest_suffix(name: str, taken: set[str]) -> str:
    """The shortest dotted suffix of ``name`` not in ``taken``, else ``name``."""
    dot = name.rfind(".")
    while dot >= 0:
        suffix = name[dot + 1 :]
        if suffix not in taken:
            return suffix
        dot = name.rfind(".", 0, dot)
    return name


def _suffixes(name: str) -> list[str]:
    """The dotted suffixes of ``name``, shortest first, ``name`` itself last."""
    suffixes = []
    dot = name.rfind(".")
    while dot >= 0:
        suffixes.append(name[dot + 1 :])
        dot = name.rfind(".", 0, dot)
    suffixes.append(name)
    return suffixes


def exact_target_modules(selected: Iterable[str], names: Iterable[str]) -> str:
    """A regex for ``LoraConfig(target_modules=...)`` that PEFT's ``re.fullmatch`` answers
    for exactly the ``selected`` names among the model's module ``names``.

    Unlike a list, PEFT neither shortens a str nor lets it match longer names ending in it, and
    saves it as written. Built from the folded names: layer and expert numbers become digit
    ranges, shared leading segments are written once, and there is no ``.*`` to backtrack on.
    """
    chosen = list(dict.fromkeys(selected))
    known = set(names)
    missing = [name for name in chosen if name not in known]
    if missing:
        raise ValueError(
            f"{len(missing):,} selected names are not module names, first {missing[0]!r}"
        )
    if not chosen:
        raise ValueError("nothing selected: PEFT refuses a config that matches no module")
    return to_regex(fold(chosen))


# Compiled matchers per config object (kept while the config is alive, at most 64 configs).
_BY_CONFIG_SIZE = 64
_CONFIG_FIELDS = _FIELDS[:6]
_CONTAINERS = (list, set, dict)


class _ConfigMatcher:
    """A config's matcher, with the fields it was compiled from, to tell when they change."""

    __slots__ = ("config", "fields", "match", "sized")

    def __init__(self, config: Any) -> None:
        self.config = config
        self.fields = _read(config)
        # The containers among them, with their sizes: a list grown in place is seen too.
        self.sized = tuple((v, len(v)) for v in self.fields if type(v) in _CONTAINERS)
        self.match = PeftMatcher.from_config(config).match

    def fresh(self, config: Any) -> bool:
        """Whether ``config`` still holds the very fields compiled, at the sizes compiled.

        Asked on every call: each field is compared by identity, written out (a sixth of the
        cost of reading them into a tuple and comparing that)."""
        targets, excludes, to_save, layers, pattern, parameters = self.fields
        try:
            same = (
                config is self.config
                and config.target_modules is targets
                and config.exclude_modules is excludes
                and config.modules_to_save is to_save
                and config.layers_to_transform is layers
                and config.layers_pattern is pattern
                and config.target_parameters is parameters
            )
        except AttributeError:  # PEFT reads a missing field as None
            same = all(map(operator.is_, _read(config), self.fields))
        if same:
            for value, size in self.sized:
                if len(value) != size:
                    return False
        return same


def _read(config: Any) -> tuple[Any, ...]:
    return tuple(getattr(config, name, None) for name in _CONFIG_FIELDS)


_BY_CONFIG: dict[int, _ConfigMatcher] = {}
# Matchers of a regex target alone, by the regex (at most 64).
_BY_REGEX: dict[str, Callable[[str], bool | Excluded | None]] = {}


def check_target_module_exists(config: Any, key: str) -> bool | Excluded | None:
    """The installed PEFT's ``check_target_module_exists`` (0.21.2's where PEFT is not installed
    or its release is not known): truthy exactly when PEFT's is.

    The compiled matcher is kept per config, and compiled again when one of its fields is
    replaced or changes size. A field changed in place that keeps its size is seen only by the
    steps asked of the live config (a key in an exclude set), not by the kept matcher: build a
    :class:`PeftMatcher` (or assign a new list) after such a change.
    """
    # PEFT's first questions, asked of the live config as PEFT asks them, where the answer
    # needs no matcher kept for the config (and so no check that the config is unchanged): a
    # key in an exclude set (LoraConfig makes a list one) is ruled out in one lookup, and a
    # regex target alone is answered by the regex's own matcher.
    excludes = getattr(config, "exclude_modules", None)
    if excludes:
        if type(excludes) is set and key in excludes:
            return _excluded_marker()  # type: ignore[no-any-return]
    elif type(targets := getattr(config, "target_modules", None)) is str and not getattr(
        config, "modules_to_save", None
    ):
        by_regex = _BY_REGEX.get(targets)
        if by_regex is None:
            if len(_BY_REGEX) >= _BY_CONFIG_SIZE:
                _BY_REGEX.clear()
            by_regex = _BY_REGEX[targets] = PeftMatcher(targets).match
        return by_regex(key)
    compiled = _BY_CONFIG.get(id(config))
    if compiled is None or not compiled.fresh(config):
        if len(_BY_CONFIG) >= _BY_CONFIG_SIZE:
            _BY_CONFIG.clear()
        compiled = _BY_CONFIG[id(config)] = _ConfigMatcher(config)
    return compiled.match(key)
