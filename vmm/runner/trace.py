"""`--trace FILE`: JSON lines. A first line with the run's start, then one object per exit, stop,
note and SPP event, each with its CLOCK_MONOTONIC time stamp and its vCPU.

A batch is formatted with one bytes `%`: every record is `WIDTH` items whose first is its
template (`vmm.runner.records`), so the batch's templates, joined, are one format string for the
other items, in order; slow records format themselves through json from inside that `%`. No
Python code runs per record.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from vmm.runner.records import (
    EXIT,
    KIND,
    NOTE,
    SLOW,
    SPP,
    STOP,
    WIDTH,
    ExitRecorder,
    Slow,
    format_slow_with,
    mmio_where,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any


class ExitTrace(ExitRecorder):
    def header(self) -> str:
        return _line({"event": "start", "mono_ns": self.start_ns})

    def format_batch(self, batch: list[Any]) -> bytes:
        kinds = batch[::WIDTH]
        values = batch[:]
        del values[::WIDTH]
        try:
            return b"".join(kinds) % tuple(values)
        except TypeError:  # a value a template cannot take (None where a number goes): one at a time
            records = [batch[i : i + WIDTH] for i in range(0, len(batch), WIDTH)]
            return b"".join(bytes(r[1]) if r[0] is SLOW else record_line(r).encode() for r in records)

def record_line(r: Sequence[Any]) -> str:
    """A fast record's line through json: what its template gives, for records it cannot take."""
    kind, site = KIND[r[0]], r[2]
    record: dict[str, Any] = {"mono_ns": r[1], "vcpu": kind.vcpu, "reason": kind.reason, "rip": site.rip}
    if kind.reason == "IO":
        record.update(port=site.port, size=site.size, write=kind.write, value=r[3])
    else:
        address, data = mmio_where(r[3])
        record.update(length=site.size, write=kind.write, address=address)
        if data is not None:
            record["data"] = data.decode()
    record["dur_ns"] = r[4]
    return _line(record)

def slow_line(s: Slow) -> str:
    """A slow record's line."""
    record: dict[str, Any]
    what, f = s.what, s.fields
    if what == EXIT:
        t0, vcpu, snapshot, dur = f
        record = {"mono_ns": t0, **snapshot, "dur_ns": dur}
    elif what == STOP:
        t1, vcpu, status, reason = f
        # nested, so "reason" at the top level always means an exit's reason
        record = {"mono_ns": t1, "vcpu": vcpu, "event": "stop", "stop": {"status": status, "reason": reason}}
    elif what == SPP:
        t, vcpu, gpa, verdict, text = f
        record = {"mono_ns": t, "vcpu": vcpu, "event": "spp", "gpa": gpa, "verdict": verdict, "what": text}
    else:
        assert what == NOTE
        t, event, fields = f
        record = {"mono_ns": t, "event": event, **fields}
    return _line(record)


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(", ", ": ")) + "\n"


format_slow_with(slow_line)  # the records module formats its Slow records with this
