"""Hypothesis profiles: `ci` (CI=true) runs 1,000 examples per property, `deep` 100,000."""

import os

from hypothesis import HealthCheck, settings

_common = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("dev", max_examples=300, **_common)
settings.register_profile("ci", max_examples=1_000, derandomize=False, **_common)
settings.register_profile("deep", max_examples=100_000, **_common)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "dev")
)
