"""The trace's per-vCPU templates give, for every record kind, the same JSON object as formatting
the record one field at a time through json; a record the template cannot take (a None where a
number goes) falls back to that slow path for its batch instead of failing."""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from vmm.runner.records import EXIT, NOTE, SLOW, SPP, STOP, WIDTH, io_site, kinds, mmio_site, slow
from vmm.runner.trace import ExitTrace, record_line

u64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
small = st.integers(min_value=0, max_value=255)
rips = st.one_of(st.none(), u64)  # None: a vCPU without sync regs


def _trace() -> ExitTrace:
    fd = os.open(os.devnull, os.O_WRONLY)
    trace = ExitTrace(fd)
    os.close(fd)  # nothing is written: only the formatting is under test
    return trace


records = st.one_of(
    st.builds(lambda v, out, t, rip, port, size, value, dur: (
        kinds(v).io_out if out else kinds(v).io_in, t, io_site(rip, port, size), value, dur),
        small, st.booleans(), u64, rips, st.integers(0, 0xFFFF), st.sampled_from([1, 2, 4]),
        st.integers(0, 0xFFFFFFFF), u64),
    st.builds(lambda v, t, rip, address, data, dur: (
        kinds(v).mmio_write, t, mmio_site(rip, len(data)), b'%d, "data": "%s"' % (address, data.hex().encode()), dur),
        small, u64, rips, u64, st.binary(min_size=1, max_size=8), u64),
    st.builds(lambda v, t, rip, address, length, dur: (
        kinds(v).mmio_read, t, mmio_site(rip, length), b"%d" % address, dur),
        small, u64, rips, u64, st.integers(1, 8), u64),
    st.builds(lambda t, v, dur: slow(EXIT, t, v, {"vcpu": v, "reason": "HLT", "rip": 4096}, dur), u64, small, u64),
    st.builds(lambda t, v, status, reason: slow(STOP, t, v, status, reason), u64, small, small, st.text(max_size=20)),
    st.builds(lambda t: slow(NOTE, t, "unhandled-io", {"vcpu": 0, "port": 0x80}), u64),
    st.builds(lambda t, v, gpa, verdict, text: slow(SPP, t, v, gpa, verdict, text),
              u64, small, u64, st.sampled_from(["Allow", "Deny"]), st.text(max_size=20)),
)  # fmt: skip


def _one(r: tuple[Any, ...]) -> str:
    return bytes(r[1]).decode() if r[0] is SLOW else record_line(r)


@given(st.lists(records, min_size=1, max_size=30))
def test_templates_equal_the_slow_path(batch: list[tuple[Any, ...]]) -> None:
    assert all(len(r) == WIDTH for r in batch)
    trace = _trace()
    fast = trace.format_batch([x for r in batch for x in r]).splitlines()
    assert len(fast) == len(batch)
    assert [json.loads(line) for line in fast] == [json.loads(_one(r)) for r in batch]


def test_the_lines_say_what_the_records_hold() -> None:
    trace = _trace()
    batch = [(kinds(1).io_in, 6, io_site(4096, 0x3FD, 1), 0x60, 50),
             (kinds(2).mmio_write, 7, mmio_site(None, 2), b'36864, "data": "0102"', 70)]  # fmt: skip
    lines = [json.loads(line) for line in trace.format_batch([x for r in batch for x in r]).splitlines()]
    assert lines == [
        {"mono_ns": 6, "vcpu": 1, "reason": "IO", "rip": 4096, "port": 0x3FD, "size": 1, "write": False,
         "value": 0x60, "dur_ns": 50},
        {"mono_ns": 7, "vcpu": 2, "reason": "MMIO", "rip": None, "address": 0x9000, "length": 2, "write": True,
         "data": "0102", "dur_ns": 70},
    ]  # fmt: skip


def test_a_record_with_a_none_falls_back() -> None:
    trace = _trace()
    batch = [(kinds(0).io_out, 5, io_site(None, 0x3F8, 1), None, 100),
             (kinds(0).io_in, 6, io_site(4096, 0x3FD, 1), 0x60, 50)]  # fmt: skip
    lines = [json.loads(line) for line in trace.format_batch([x for r in batch for x in r]).splitlines()]
    assert lines == [
        {"mono_ns": 5, "vcpu": 0, "reason": "IO", "rip": None, "port": 0x3F8, "size": 1, "write": True, "value": None,
         "dur_ns": 100},
        {"mono_ns": 6, "vcpu": 0, "reason": "IO", "rip": 4096, "port": 0x3FD, "size": 1, "write": False,
         "value": 0x60, "dur_ns": 50},
    ]  # fmt: skip
