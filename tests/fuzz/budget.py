"""How many examples a fuzzing test runs: its CI-sized default, scaled for a long run.

PYVMM_FUZZ_EXAMPLES=N sets the count outright; HYPOTHESIS_PROFILE=fuzz multiplies every default
by FUZZ_FACTOR (and HYPOTHESIS_PROFILE=ci, or nothing, keeps the defaults)."""

from __future__ import annotations

import os

FUZZ_FACTOR = 40


def examples(ci_default: int) -> int:
    explicit = os.environ.get("PYVMM_FUZZ_EXAMPLES", "").strip()
    if explicit:
        return max(1, int(explicit))
    profile = os.environ.get("HYPOTHESIS_PROFILE", "ci")
    if profile == "fuzz":
        return ci_default * FUZZ_FACTOR
    if profile != "ci":
        raise ValueError(f"HYPOTHESIS_PROFILE={profile!r}: the profiles are ci (the default) and fuzz")
    return ci_default
