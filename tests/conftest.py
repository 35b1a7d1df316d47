"""Hypothesis profiles, and the end-of-run note on what the default command left out.

Profiles: `dev` (the default) runs 300 examples per property, `ci` (CI=true) 1,000, `deep`
100,000. HYPOTHESIS_PROFILE names one and takes precedence over CI.

`python -m pytest` deselects the tests marked `slow` (pyproject.toml's addopts); `python -m
pytest -m slow` runs them alone, `python -m pytest -m ""` everything. CI (.ci/run) runs both.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Generator

import pytest
from hypothesis import HealthCheck, settings

_common = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("dev", max_examples=300, **_common)
settings.register_profile("ci", max_examples=1_000, derandomize=False, **_common)
settings.register_profile("deep", max_examples=100_000, **_common)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "dev")
)

# Where the tests a skip reason names do run: the packages they need are installed only in the
# environments CI builds beside the main one.
_WHERE = [
    (re.compile(r"in its front-end's environment"), "front-end", ".ci/releases, .ci/frontend-*"),
    (re.compile(r"vLLM is not installed"), "vLLM", ".ci/serving"),
    (re.compile(r"SGLang is not installed"), "SGLang", ".ci/serving-sglang"),
    (re.compile(r"PEFT \S+ (does not )?rewrites? configs"), "other PEFT release", ".ci/releases"),
]

_deselected_slow = 0


def pytest_deselected(items: list[pytest.Item]) -> None:
    global _deselected_slow
    _deselected_slow += sum(1 for item in items if item.get_closest_marker("slow"))


def _reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter,
) -> Generator[None, None, None]:
    """One line on the slow tests left out, one on the tests skipped, and where each runs:
    after the short test summary (-ra), just above the final counts."""
    yield
    lines = []
    if _deselected_slow:
        lines.append(
            f"{_deselected_slow} slow tests deselected (real get_peft_model on full layer counts, "
            "nemo-automodel's client, fuzz and scale runs): `python -m pytest -m slow` runs them, "
            '`-m ""` runs everything; CI (.ci/run) runs them with the ci profile'
        )
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if getattr(report, "when", None) != "teardown"
    ]
    if skipped:
        groups: Counter[str] = Counter()
        for report in skipped:
            reason = _reason(report)
            for pattern, what, where in _WHERE:
                if pattern.search(reason):
                    groups[f"{what} tests (run by {where})"] += 1
                    break
            else:
                groups[reason] += 1
        parts = ", ".join(f"{count} {why}" for why, count in groups.most_common())
        lines.append(f"{len(skipped)} skipped: {parts}")
    if lines:
        terminalreporter.write_sep("-", "left out of this run")
        for line in lines:
            terminalreporter.write_line(line)
