"""Turn a full benchmark run (pytest-benchmark JSON) into benchmarks/results/: a Markdown table
of per-name costs and issue 5's ratios, and two plots.

    python benchmarks/results.py benchmarks/results/full.json

Every figure is the best round of a benchmark divided by the names it ran over; every ratio
divides two such figures from the same run.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "results"
SEED = "seed ModuleMatcher.match"


def load(path: Path) -> tuple[dict[str, Any], dict[tuple[str, str], dict[int, float]]]:
    """The machine, and seconds per name by (case, contender), keyed by name or pattern count."""
    run = json.loads(path.read_text())
    per_name: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for bench in run["benchmarks"]:
        info = bench["extra_info"]
        size = info["names"] if info["case"] in ("names", "memory") else info["patterns"]
        per_name[info["case"], info["contender"]][size] = bench["stats"]["min"] / info["names"]
        if "peak_mib" in info:
            per_name["memory", "peak MiB"][size] = info["peak_mib"]
    return run["machine_info"], per_name


def one(per_name: dict[tuple[str, str], dict[int, float]], case: str, contender: str) -> float:
    (value,) = per_name[case, contender].values()
    return value


def ratios(per_name: dict[tuple[str, str], dict[int, float]]) -> list[tuple[str, float, str]]:
    """The speed targets: (what, measured, target)."""
    rows = []
    for count, mm_target, ps_target in (("64", 50, 80), ("1,024", 500, 800)):
        case = f"kimi-k2:{count} per-expert"
        seed = one(per_name, case, SEED)
        for way, target in (("ModuleMatcher", mm_target), ("PatternSet", ps_target)):
            got = seed / one(per_name, case, f"modmatch {way}.match cold")
            rows.append((f"{count} patterns: seed / {way}.match cold", got, f">= {target}x"))
    case = "kimi-k2:64 per-expert"
    floor = one(per_name, case, "dict lookup (floor)")
    for way in ("ModuleMatcher.match warm", "PatternSet.filter"):
        got = one(per_name, case, f"modmatch {way}") / floor
        rows.append((f"{way} / dict lookup", got, "<= 3x"))
    warm = per_name["patterns", "PatternSet.match warm"]
    cold = per_name["patterns", "PatternSet.match cold"]
    few = min(warm)
    rows.append(
        (f"10,000 / {few} patterns, PatternSet.match warm", warm[10_000] / warm[few], "<= 2x")
    )
    rows.append(
        (
            f"PatternSet.match first pass: 10,000 / {min(cold)} patterns",
            cold[10_000] / cold[min(cold)],
            "<= 1.5x",
        )
    )
    for way in ("PatternSet.match cold", "PatternSet.filter"):
        sizes = per_name["names", way]
        rows.append(
            (f"{way}: 1M names / 10k names, per name", sizes[1_000_000] / sizes[10_000], "<= 1.3x")
        )
    compile_s = per_name["compile", "PatternSet(patterns)"][10_000]
    rows.append(("10,000 patterns: compile time (seconds, not a ratio)", compile_s, "< 1 s"))
    for model in _whole_models(per_name):
        walk = one(per_name, model, "walk")
        rows.append(
            (
                f"{model}: select / named_modules() walk",
                one(per_name, model, "modmatch_select") / walk,
                "<= 1.3x",
            )
        )
    return rows


def _whole_models(per_name: dict[tuple[str, str], dict[int, float]]) -> list[str]:
    return sorted({case for case, _ in per_name if case.endswith(" model")})


def markdown(machine: dict[str, Any], per_name: dict[tuple[str, str], dict[int, float]]) -> str:
    cpu = machine.get("cpu", {}).get("brand_raw", "unknown CPU")
    lines = [
        f"Machine: {cpu}, {machine.get('cpu', {}).get('count', '?')} cores, "
        f"Python {machine['python_version']}.",
        "",
        "### The speed targets",
        "",
        "| measure | measured | target |",
        "| --- | ---: | --- |",
    ]
    lines += [
        f"| {what} | {got:.2f}{'' if target.endswith(' s') else 'x'} | {target} |"
        if got < 100
        else f"| {what} | {got:,.0f}x | {target} |"
        for what, got, target in ratios(per_name)
    ]
    lines += ["", "### µs per name, and speed-up over the seed's ModuleMatcher.match", ""]
    seed_cases = {case for case, _ in per_name if ":" in case and not _framework(case)}
    cases = sorted(seed_cases, key=_case_order)
    lines += ["| contender | " + " | ".join(cases) + " |", "|---" * (len(cases) + 1) + "|"]
    contenders = list(dict.fromkeys(c for case, c in per_name if case in seed_cases))
    for contender in contenders:
        cells = []
        for case in cases:
            if (case, contender) not in per_name:
                cells.append("")
                continue
            cost = one(per_name, case, contender)
            cells.append(f"{_micro(cost)} ({one(per_name, case, SEED) / cost:,.0f}x)")
        lines.append(f"| {contender} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "### Each framework's own matcher against modmatch's drop-in: µs per name",
        "",
        "| case | framework | modmatch | framework / modmatch | target |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for case, target in _FRAMEWORK_TARGETS.items():
        theirs, ours = (one(per_name, f"frameworks:{case}", side) for side in _SIDES)
        lines.append(
            f"| {case} | {_micro(theirs)} | {_micro(ours)} | {theirs / ours:,.1f}x | {target} |"
        )
    lines += ["", "### Scaling: µs per name", ""]
    for case, label in (("names", "names"), ("patterns", "patterns")):
        ways = [w for c, w in per_name if c == case]
        sizes = sorted(per_name[case, ways[0]])
        lines += [f"| {label} | " + " | ".join(ways) + " |", "|---" * (len(ways) + 1) + "|"]
        for size in sizes:
            cells = [f"{per_name[case, w][size] * 1e6:.3f}" for w in ways]
            lines.append(f"| {size:,} | " + " | ".join(cells) + " |")
        lines.append("")
    compile_times = per_name["compile", "PatternSet(patterns)"]
    lines.append(
        "Compile time, `PatternSet(patterns)`: "
        + ", ".join(
            f"{count:,} patterns {s * 1e3:.3g} ms" for count, s in sorted(compile_times.items())
        )
        + "."
    )
    for model in _whole_models(per_name):
        whole = {
            w: one(per_name, model, w) * 1e6 for w in ("walk", "modmatch_select", "seed_select")
        }
        lines += [
            "",
            f"Whole model ({model.removesuffix(' model')}, meta device), µs per module: the "
            f"`named_modules()` walk {whole['walk']:.2f}, `ModuleMatcher.select` "
            f"{whole['modmatch_select']:.2f}, the seed's `match` per module over the walk "
            f"{whole['seed_select']:.1f}.",
        ]
    (peak,) = per_name["memory", "peak MiB"].items()
    imports = {w: one(per_name, "import", w) for w in ("pass", "import modmatch")}
    lines += [
        "",
        f"A cache of {peak[0]:,} names: {peak[1]:.0f} MiB at peak (tracemalloc). "
        f"`python -c 'import modmatch'`: {imports['import modmatch'] * 1e3:.0f} ms, "
        f"against {imports['pass'] * 1e3:.0f} ms for `python -c pass`.",
    ]
    return "\n".join(lines) + "\n"


_SIDES = ("framework", "modmatch")
_FRAMEWORK_TARGETS = {
    "peft: 10,000 full names": ">= 100x",
    "peft: 64-alternative regex": ">= 10x",
    "automodel: 64 patterns": ">= 20x",
}


def _framework(case: str) -> bool:
    return case.startswith("frameworks:")


def _micro(seconds: float) -> str:
    """Microseconds, three significant digits without an exponent."""
    micro = seconds * 1e6
    return f"{micro:,.0f}" if micro >= 100 else f"{micro:.3g}"


def _case_order(case: str) -> tuple[int, str]:
    digits = "".join(ch for ch in case.split(":")[1] if ch.isdigit())
    return (int(digits) if digits else 0, case)


def plots(per_name: dict[tuple[str, str], dict[int, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    for axis, case in zip(axes, ("kimi-k2:64 per-expert", "kimi-k2:1,024 per-expert"), strict=True):
        ways = [c for k, c in per_name if k == case]
        costs = [one(per_name, case, w) * 1e6 for w in ways]
        axis.barh(ways, costs)
        axis.set_xscale("log")
        axis.set_xlabel("µs per name (log)")
        axis.set_title(f"Kimi-K2 names, {case.split(':')[1]} patterns")
        axis.invert_yaxis()
    figure.tight_layout()
    figure.savefig(OUT / "contenders.png", dpi=100)

    figure, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for axis, case, label in ((axes[0], "names", "names"), (axes[1], "patterns", "patterns")):
        for way in [w for c, w in per_name if c == case]:
            sizes = sorted(per_name[case, way])
            axis.plot(sizes, [per_name[case, way][s] * 1e6 for s in sizes], marker="o", label=way)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel(label)
        axis.set_ylabel("µs per name")
        axis.legend(fontsize=8)
    compile_times = per_name["compile", "PatternSet(patterns)"]
    counts = sorted(compile_times)
    axes[2].plot(counts, [compile_times[c] for c in counts], marker="o")
    axes[2].set_xscale("log")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("patterns")
    axes[2].set_ylabel("compile seconds")
    figure.tight_layout()
    figure.savefig(OUT / "scaling.png", dpi=100)


def main() -> None:
    machine, per_name = load(Path(sys.argv[1] if len(sys.argv) > 1 else OUT / "full.json"))
    OUT.mkdir(exist_ok=True)
    (OUT / "results.md").write_text(markdown(machine, per_name))
    plots(per_name)
    print((OUT / "results.md").read_text())


if __name__ == "__main__":
    main()
