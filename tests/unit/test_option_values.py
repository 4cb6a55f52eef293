"""Option values that used to end in a traceback (OverflowError, Python's 4300-digit limit) are
refused with one line and the usage status; the option types live in vmm.numbers."""

from __future__ import annotations

import pytest
from conftest import guest, one_line_error, pyvmm

from vmm.errors import ExitStatus
from vmm.numbers import MAX_SECONDS, parse_count, parse_int, parse_seconds


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e30", "-1", "0", "1e400", "abc", "9" * 5000])
def test_timeout_values_refused(value: str) -> None:
    line = one_line_error(pyvmm("run", str(guest("hello-long")), "--timeout", value), ExitStatus.USAGE)
    assert "--timeout" in line


def test_smp_with_thousands_of_digits() -> None:
    line = one_line_error(pyvmm("run", str(guest("hello-long")), "-smp", "9" * 5000), ExitStatus.USAGE)
    assert "vCPU count" in line and len(line) < 200


def test_number_parsers() -> None:
    assert parse_seconds("2.5") == 2.5
    assert parse_seconds(str(MAX_SECONDS)) == MAX_SECONDS
    assert parse_count("4", "n") == 4
    for bad in ("inf", "nan", "1e30", "0", "-1"):
        with pytest.raises(ValueError):
            parse_seconds(bad)
    for bad in ("0", "x", "1" * 65):
        with pytest.raises(ValueError):
            parse_count(bad, "n")
    with pytest.raises(ValueError, match="more than 64 characters"):
        parse_int("1" * 5000, "size")
