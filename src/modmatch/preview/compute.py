"""One preview, start to end: the inputs read (paths checked before anything heavy is imported),
the framework's rules applied to the model, then one immutable :class:`~.result.Result`."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import re
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib.util import find_spec
from typing import Any

from ..errors import FallbackWarning, InputError, PatternError
from ..inputs.configs import Config, read_config
from ..inputs.models import Model, Progress, Source, find, load
from ..peft import PeftMatcher, exact_target_modules, rules_version
from ..serving import Engine, Settings, Verdict, engines
from .advice import Suggestion
from .findings import advise, explain, findings, notes
from .peft import NothingMatched, Refused, preview
from .report import report
from .result import Failed, Result, Served
from .rules import Options, RuleSet, rule_set
from .serve import audit, check

__all__ = ["Request", "run"]

# The LoraConfig fields that decide what PEFT adapts, and the options they become.
_PEFT_FIELDS = {
    "target_modules": "targets",
    "exclude_modules": "excludes",
    "layers_to_transform": "layers_to_transform",
    "layers_pattern": "layers_pattern",
    "target_parameters": "target_parameters",
    "modules_to_save": "modules_to_save",
    "task_type": "task_type",
}


@dataclass(frozen=True)
class Request:
    """What to preview: the rules and their options, or a ``config`` file (of ``kind``, else
    found from its content); the ``model`` (else ``names``, else the config's base model); and
    what else to answer: ``explain`` names, the PEFT regex (``emit``), and with ``engine`` the
    serving verdict on the adapter whose folder ``config`` is."""

    # The rule set; None: the one that reads the config (PEFT's, or its front-end's framework's).
    rules: str | None = None
    options: Options = field(default_factory=Options)
    model: str | None = None
    names: str | None = None
    config: str | None = None
    kind: str | None = None
    explain: tuple[str, ...] = ()
    emit: bool = False
    engine: str | None = None
    # The server's flags (--max-lora-rank, --lora-target-modules, --lora-strict-loading).
    serving: Settings = field(default_factory=Settings)
    # How the command names the model's option in errors.
    model_flag: str = "--model"


def run(request: Request, progress: Progress | None = None) -> Result:
    """The preview ``request`` asks for; :class:`~.result.Failed` with a one-line message
    where the input is bad or the framework refuses the config."""
    lines: list[str] = []
    try:
        with _fallback_warnings(request.options, lines):
            result = _run(request, progress, lines)
    except Failed as failed:
        raise Failed(str(failed), failed.peft_version, tuple(lines), failed.suggestions) from failed
    except (InputError, PatternError, Refused, re.error, TypeError, ValueError) as error:
        message = _one_line(error, request.options)
        raise Failed(message, _peft_version(request), tuple(lines)) from error
    return dataclasses.replace(result, warnings=tuple(lines))


def _run(request: Request, progress: Progress | None, lines: list[str]) -> Result:
    start = time.perf_counter()
    config, source = _inputs(request)
    name = _rules_of(request, config)
    options = _options(request, config, name)
    said: tuple[str, ...] = ()  # a front-end's notes on its settings and the model built
    if config is None or config.front_end is None:  # checked before the model is read
        rules = rule_set(name, options)
        model = load(source, options.task_type, progress)
    else:  # a front-end builds its config from the model (and may build the model itself)
        builder = functools.partial(config.front_end.build_model, config.settings)
        model = load(source, options.task_type, progress, builder)
        said = tuple(config.front_end.notes(config.settings, model.module))
        options = _front_end_options(config, options, model)
        rules = rule_set(name, options)
    read = time.perf_counter()
    rules = rules.on(model)
    try:
        selected = rules.selected(model)
    except NothingMatched as refused:
        raise _with_suggestions(refused, rules, model, said) from refused
    matched = time.perf_counter()
    regex = _peft_regex(rules, model, selected, lines) if request.emit else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unmatched patterns are part of the output
        counts = report(rules.patterns, rules.asked(model), selects=rules.selects())
    found = findings(rules, model, counts, selected)
    options_need_types = (
        options.all_linear
        or rules.name == "automodel"
        or not (options.targets or options.target_regex or request.config)
    )
    advised = time.perf_counter()
    served = _served(request, config, source, model, selected)
    end = time.perf_counter()
    rewritten = rules.rewritten(model)
    parameters = rules.selected_parameters(model)
    timings = {"reading the model": read - start, "matching": matched - read}
    timings["counts and advice"] = advised - matched
    if served is not None:
        timings["serving"] = end - advised
    timings["total"] = end - start
    pattern_kind = "target" if options.targets or config or not options.excludes else "exclude"
    return Result(
        rules=rules.name,
        call=rules.call,
        model=source.label,
        modules=len(model.modules),
        linear=sum(is_linear for _, is_linear in model.modules),
        model_built=model.module is not None,
        selected=tuple(selected),
        patterns=tuple((c.pattern, c.matched) for c in counts.patterns),
        pattern_kind=pattern_kind,
        unmatched_patterns=found.unmatched,
        unmatched_excludes=tuple(rules.unmatched_excludes(model)),
        suggestions=_patterns(found.suggestions),
        suggestion_notes=_whys(found.suggestions),
        notes=(*said, *notes(rules, model, selected, needs_types=options_need_types)),
        defaults=rules.defaults_used,
        peft_version=rules.peft_version,
        built_by=rules.built_by,
        lora_config=rules.built,
        built_as=rules.built_as,
        config=rules.config_shown() if rules.peft_version is not None else None,
        selected_parameters=tuple(parameters) if parameters is not None else None,
        selected_not_linear=found.not_linear,
        rewritten={k: tuple(v) for k, v in rewritten.items()} if rewritten is not None else None,
        moved=found.moved,
        full_name_hints=found.full_name_hints,
        fused_experts=found.fused_experts,
        broader=found.broader,
        explanations=tuple(explain(rules, name, model) for name in request.explain),
        regex=regex,
        served=served,
        timings=timings,
    )


def _inputs(request: Request) -> tuple[Config | None, Source]:
    """The config and the model's source, paths checked, nothing heavy imported."""
    if request.engine is not None:
        _check_settings(request.engine, request.serving)
    config = read_config(request.config, request.kind) if request.config is not None else None
    source = _source(request, config)
    needs = "a front-end's translation" if config and config.front_end else None
    if request.engine is not None:
        needs = "serving"
    if needs is not None and source.kind != "config":
        raise InputError(
            f"{needs} reads the model's own modules: give {request.model_flag} a config.json, "
            "a model folder or a cached Hub id"
        )
    return config, source


def _source(request: Request, config: Config | None) -> Source:
    """The model named, else the base model the config names."""
    if request.model is not None or request.names is not None or config is None:
        return find(request.model, request.names, request.model_flag)
    base = config.base_model()
    if base is None:
        raise InputError(f"{config.path} names no base model: give {request.model_flag}")
    try:
        return find(base)
    except InputError:
        raise InputError(
            f"{config.path} trains {base}, which is neither a local folder nor in the Hugging "
            f"Face cache (nothing is downloaded): give {request.model_flag}"
        ) from None


def _rules_of(request: Request, config: Config | None) -> str:
    """The rule set: the one asked for, which must be the config's where there is one."""
    own = "peft" if config is None or config.front_end is None else config.front_end.RULES
    if request.rules is not None and config is not None and request.rules != own:
        raise InputError(f"{config.path} is read by {own}'s rules: not by {request.rules}'s")
    return request.rules or own


def _options(request: Request, config: Config | None, rules: str) -> Options:
    """The request's options, with a PEFT adapter config's fields where one was given."""
    if config is None:
        return request.options
    if rules != "peft" and request.options.peft_version is not None:
        raise InputError(f"--peft-version: {config.path} is read by {rules}'s rules, not PEFT's")
    front_end = config.front_end
    if front_end is None:
        return dataclasses.replace(request.options, **lora_options(config.settings))
    if request.options.peft_version is not None or rules != "peft":
        return request.options
    if front_end.PEFT_PIN is None:  # any release: the installed one's rules
        return request.options
    # The installed PEFT where the front-end runs beside it, else the release it pins.
    beside = find_spec(front_end.NAME) is not None
    version = rules_version(None) if beside else front_end.PEFT_PIN
    return dataclasses.replace(request.options, peft_version=version)


def _front_end_options(config: Config, options: Options, model: Model) -> Options:
    """The options for the LoraConfig the front-end builds from its config on this model."""
    front_end = config.front_end
    assert front_end is not None
    try:
        built = front_end.lora_config(config.settings, model.module)
    except ValueError as error:  # the front-end refuses its settings
        raise InputError(f"{config.path}: {' '.join(str(error).split())}") from error
    if front_end.RULES == "peft":
        fields = lora_options(built)
    else:  # a framework's own config: NeMo Automodel's PeftConfig names its fields so
        fields = {
            "targets": built.get("target_modules") or None,
            "excludes": built.get("exclude_modules") or None,
            "all_linear": bool(built.get("match_all_linear")),
        }
    if front_end.PARAMETER_DROPOUT is not None:
        fields["parameter_dropout"] = front_end.PARAMETER_DROPOUT
    shown = {k: sorted(v) if isinstance(v, (set, frozenset)) else v for k, v in built.items()}
    return dataclasses.replace(
        options, **fields, built_by=front_end.TITLE, built=shown, built_as=front_end.CONFIG_CLASS
    )


def lora_options(settings: Any) -> dict[str, Any]:
    """The rule set's options for a LoRA config's fields (as saved, or as a front-end builds
    them): a str target is a regex, or PEFT's "all-linear"."""
    options: dict[str, Any] = {
        "lora_dropout": settings.get("lora_dropout") or 0.0,
        "flags": tuple(f for f in ("fan_in_fan_out", "lora_bias", "use_dora") if settings.get(f)),
    }
    for name, option in _PEFT_FIELDS.items():
        value = settings.get(name)
        if name == "target_modules" and isinstance(value, str):
            if value.lower() == "all-linear":
                options["all_linear"] = True
            else:
                options["target_regex"] = value
        elif name == "exclude_modules" and isinstance(value, str):
            options["exclude_regex"] = value
        elif value is not None:
            options[option] = value
    return options


def _check_settings(name: str, settings: Settings) -> None:
    """The engine is one registered, and takes the flags and --max-lora-rank given."""
    engine = engines().get(name)
    if engine is None:
        raise InputError(f"engine {name!r}: not one of {', '.join(engines())}")
    unknown = sorted(settings.given() - engine.FLAGS)
    if unknown:
        raise InputError(f"{', '.join(unknown)}: {engine.TITLE} has no such flag")
    rank, ranks = settings.max_lora_rank, engine.MAX_LORA_RANKS
    if rank is not None and (rank < 1 or (ranks is not None and rank not in ranks)):
        takes = "a positive rank" if ranks is None else f"one of {', '.join(map(str, ranks))}"
        raise InputError(f"--max-lora-rank {rank}: {engine.TITLE} takes {takes}")


def _served(
    request: Request, config: Config | None, source: Source, model: Model, selected: list[str]
) -> Served | None:
    """The saved adapter's audit against the modules training adapts, and the engine's verdict."""
    if request.engine is None:
        return None
    assert config is not None and source.path is not None
    folder = str(config.path.parent)
    adapter, verdict = check(request.engine, folder, model, source.path, request.serving)
    engine = engines()[request.engine]
    return Served(
        request.config or folder,
        audit(adapter, model, selected),
        verdict,
        engine.TITLE,
        find_spec(engine.NAME) is not None,
        _hints(verdict, engine, model),
    )


def _hints(verdict: Verdict, engine: Engine, model: Model) -> tuple[str, ...]:
    """What serves an adapter the engine refuses: the --max-lora-rank its rank needs, or a
    classification model for a classifier's adapter."""
    error = verdict.error or ""
    found = re.search(r"LoRA rank (\d+) is greater than max_lora_rank", error)
    if found is not None:
        rank = int(found.group(1))
        fits = [value for value in engine.MAX_LORA_RANKS or (rank,) if value >= rank]
        if not fits and engine.MAX_LORA_RANKS:
            return (f"{engine.TITLE} takes no --max-lora-rank above {engine.MAX_LORA_RANKS[-1]}",)
        return (f"serve with --max-lora-rank {fits[0]} (here too: --max-lora-rank {fits[0]})",)
    if "classification head" in error:
        served = (getattr(model.module.config, "architectures", None) or ["none"])[0]
        return (
            "the adapter is a classifier's: serve it on a model config whose architectures "
            f"names a classification class (this one names {served})",
        )
    return ()


def _peft_regex(rules: RuleSet, model: Model, selected: list[str], lines: list[str]) -> str:
    """The selected modules as one regex for PEFT's target_modules; warns where PEFT will not
    apply it as written. Selected parameters cannot be carried by a regex: refused, named."""
    parameters = rules.selected_parameters(model)
    if parameters:
        shown = ", ".join(sorted({p.rpartition(".")[2] for p in parameters}))
        raise InputError(
            f"--emit peft-regex: {len(parameters):,} selected parameters ({shown}) reach PEFT "
            "through target_parameters, which a target_modules regex cannot carry: set "
            f"target_parameters={sorted({p.rpartition('.')[2] for p in parameters})!r} beside it"
        )
    if not selected:
        raise InputError("no module selected: PEFT refuses a target_modules that matches nothing")
    names = [name for name, _ in model.modules]
    regex = exact_target_modules(selected, names)
    if model.module is not None:
        matcher = PeftMatcher(regex, version=rules.peft_version)
        try:
            applied = preview(matcher, names, set(), model.module)
        except Refused as refused:
            lines.append(f"PEFT {matcher.version}: {refused}")
            return regex
        lines.extend(applied.notes)
        if applied.widened or applied.dropped:
            lines.append(
                "PEFT rewrites a str target_modules on this model type under transformers 5: it "
                f"will adapt {len(applied.widened or ()):,} modules this regex does not select "
                f"and leave {len(applied.dropped or ()):,} it selects"
            )
    return regex


def _with_suggestions(
    refused: NothingMatched, rules: RuleSet, model: Model, said: tuple[str, ...] = ()
) -> Failed:
    """PEFT's refusal of a config that adapts nothing, with what to try instead and a
    front-end's notes on its settings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        counts = report(rules.patterns, rules.asked(model), selects=rules.selects())
    found, _, fused = advise(rules, model, counts.unmatched)
    suggested = _patterns(found)
    tries = "; ".join(
        f"for {pattern!r} try {', '.join(map(repr, tried))}"
        for pattern, tried in suggested.items()
        if tried
    )
    notes = "; ".join(fused.values())
    message = "; ".join(part for part in (str(refused), tries, notes, *said) if part)
    tried = {pattern: found for pattern, found in suggested.items() if found}
    return Failed(message, rules.peft_version, suggestions=tried)


def _patterns(found: Mapping[str, tuple[Suggestion, ...]]) -> dict[str, tuple[str, ...]]:
    return {pattern: tuple(s.pattern for s in tried) for pattern, tried in found.items()}


def _whys(found: Mapping[str, tuple[Suggestion, ...]]) -> dict[str, dict[str, str]]:
    """Why each suggestion is made, where the reason is not plain."""
    whys = {pattern: {s.pattern: s.why for s in tried if s.why} for pattern, tried in found.items()}
    return {pattern: why for pattern, why in whys.items() if why}


def _peft_version(request: Request) -> str | None:
    """The PEFT release whose rules refused, where PEFT's rules were chosen."""
    if request.rules not in ("peft", None):
        return None
    try:
        return rules_version(request.options.peft_version)
    except ValueError:  # the version given is what was refused
        return request.options.peft_version


def _one_line(error: Exception, options: Options) -> str:
    if isinstance(error, PatternError):
        kind = _which_list(options, error.pattern, error.index)
        return str(error).replace("invalid pattern", f"invalid {kind} pattern", 1)
    if isinstance(error, re.error):
        return f"invalid pattern: {error} in the regex {error.pattern!r}"
    return " ".join(str(error).split())


def _which_list(options: Options, pattern: str, index: int) -> str:
    """Whether the pattern at ``index`` is one of the excludes or one of the targets."""
    excludes = options.excludes or []
    if index < len(excludes) and excludes[index] == pattern:
        targets = options.targets or []
        if not (index < len(targets) and targets[index] == pattern):
            return "exclude"
    return "target"


@contextlib.contextmanager
def _fallback_warnings(options: Options, lines: list[str]) -> Iterator[None]:
    """Each FallbackWarning as one line naming its list; other warnings as Python shows them."""
    others = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FallbackWarning)
            try:
                yield
            finally:
                for warning in caught:
                    found = warning.message
                    if isinstance(found, FallbackWarning):
                        lines.append(f"{_which_list(options, found.pattern, found.index)} {found}")
                    else:
                        others.append(warning)
    finally:
        for warning in others:
            warnings.showwarning(
                warning.message, warning.category, warning.filename, warning.lineno
            )
