"""The trace's per-kind templates give, for every record kind, the same JSON object as formatting
the record one field at a time through json; a record the template cannot take (no RIP) falls
back to that slow path for its batch instead of failing."""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from vmm.runner.records import EXIT, IO_IN, IO_OUT, MMIO_READ, MMIO_WRITE, NOTE, SLOW, SPP, STOP
from vmm.runner.trace import ExitTrace, _slow

u64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
small = st.integers(min_value=0, max_value=255)


def _trace() -> ExitTrace:
    fd = os.open(os.devnull, os.O_WRONLY)
    trace = ExitTrace(fd)
    os.close(fd)  # nothing is written: only the formatting is under test
    return trace


records = st.one_of(
    st.tuples(st.sampled_from([IO_OUT, IO_IN]), u64, small, u64, st.integers(0, 0xFFFF), st.sampled_from([1, 2, 4]),
              st.integers(0, 0xFFFFFFFF), u64),
    st.tuples(st.just(MMIO_WRITE), u64, small, u64, u64, st.integers(1, 8),
              st.binary(min_size=1, max_size=8).map(lambda b: b.hex().encode()), u64),
    st.tuples(st.just(MMIO_READ), u64, small, u64, u64, st.integers(1, 8), st.just(b""), u64),
    st.tuples(st.just(SLOW), st.just(EXIT), u64, small, st.just({"vcpu": 1, "reason": "HLT", "rip": 4096}), u64),
    st.tuples(st.just(SLOW), st.just(STOP), u64, small, small, st.text(max_size=20)),
    st.tuples(st.just(SLOW), st.just(NOTE), u64, st.just("unhandled-io"), st.just({"vcpu": 0, "port": 0x80})),
    st.tuples(st.just(SLOW), st.just(SPP), u64, small, u64, st.sampled_from(["Allow", "Deny"]), st.text(max_size=20)),
)  # fmt: skip


@given(st.lists(records, min_size=1, max_size=30))
def test_templates_equal_the_slow_path(batch: list[tuple[Any, ...]]) -> None:
    trace = _trace()
    fast = trace.format_batch(batch).splitlines()
    slow = "".join(_slow(r) for r in batch).splitlines()
    assert len(fast) == len(batch)
    assert [json.loads(line) for line in fast] == [json.loads(line) for line in slow]


def test_a_record_without_rip_falls_back() -> None:
    trace = _trace()
    batch = [(IO_OUT, 5, 0, None, 0x3F8, 1, 65, 100), (IO_IN, 6, 0, 4096, 0x3FD, 1, 0x60, 50)]
    lines = [json.loads(line) for line in trace.format_batch(batch).splitlines()]
    assert lines == [
        {"mono_ns": 5, "vcpu": 0, "reason": "IO", "rip": None, "port": 0x3F8, "size": 1, "write": True, "value": 65,
         "handler_ns": 100},
        {"mono_ns": 6, "vcpu": 0, "reason": "IO", "rip": 4096, "port": 0x3FD, "size": 1, "write": False,
         "value": 0x60, "handler_ns": 50},
    ]  # fmt: skip
