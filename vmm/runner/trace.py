"""`--trace FILE`: JSON lines. A first line with the run's start, then one object per exit, stop,
note and SPP event, each with its CLOCK_MONOTONIC time stamp and its vCPU.

Port and MMIO exits are formatted a batch at a time: their records' kinds are %-templates
(`vmm.runner.records`), so a batch is one bytes format string and one `%`, with no Python code
per record; the rest go through json one at a time.
"""

from __future__ import annotations

import json
from itertools import chain
from operator import itemgetter
from typing import Any

from vmm.runner.records import EXIT, FAST, IO_IN, IO_OUT, MMIO_READ, MMIO_WRITE, NOTE, SLOW, SPP, STOP, ExitRecorder

_kind = itemgetter(0)
_BARE = {kind: kind.removeprefix(b"%.0s") for kind in FAST}  # the templates without their kind


class ExitTrace(ExitRecorder):
    def header(self) -> str:
        return _line({"event": "start", "mono_ns": self.start_ns})

    def format_batch(self, batch: list[Any]) -> bytes:
        kinds = list(map(_kind, batch))
        try:
            if SLOW not in kinds:  # the usual batch: 8 items a record, the kinds cut out in C
                values = list(chain.from_iterable(batch))
                del values[::8]
                return b"".join(map(_BARE.__getitem__, kinds)) % tuple(values)
            # rare: format the slow records now and pass their lines through %s; %.0s skips the kinds
            batch = [(SLOW, _slow(r).encode()) if r[0] is SLOW else r for r in batch]
            return b"".join(kinds) % tuple(chain.from_iterable(batch))
        except TypeError:  # a None where a number goes (no sync regs: no RIP): one record at a time
            return b"".join(r[1] if r[0] is SLOW else _slow(r).encode() for r in batch)


def _slow(r: tuple[Any, ...]) -> str:
    """One record's line through json (the templates' output for the fast kinds, as well)."""
    kind = r[0]
    record: dict[str, Any]
    if kind is IO_OUT or kind is IO_IN:
        _, t0, vcpu, rip, port, size, value, dt = r
        record = {"mono_ns": t0, "vcpu": vcpu, "reason": "IO", "rip": rip, "port": port, "size": size,
                  "write": kind is IO_OUT, "value": value, "handler_ns": dt}  # fmt: skip
    elif kind is MMIO_WRITE or kind is MMIO_READ:
        _, t0, vcpu, rip, address, length, data, dt = r
        record = {"mono_ns": t0, "vcpu": vcpu, "reason": "MMIO", "rip": rip, "address": address, "length": length,
                  "write": kind is MMIO_WRITE}  # fmt: skip
        if kind is MMIO_WRITE:
            record["data"] = data.decode()
        record["handler_ns"] = dt
    else:
        what = r[1]
        if what == EXIT:
            _, _, t0, vcpu, snapshot, dt = r
            record = {"mono_ns": t0, **snapshot, "handler_ns": dt}
        elif what == STOP:
            _, _, t1, vcpu, status, reason = r
            # nested, so "reason" at the top level always means an exit's reason
            record = {"mono_ns": t1, "vcpu": vcpu, "event": "stop", "stop": {"status": status, "reason": reason}}
        elif what == SPP:
            _, _, t, vcpu, gpa, verdict, text = r
            record = {"mono_ns": t, "vcpu": vcpu, "event": "spp", "gpa": gpa, "verdict": verdict, "what": text}
        else:
            assert what == NOTE
            _, _, t, event, fields = r
            record = {"mono_ns": t, "event": event, **fields}
    return _line(record)


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(", ", ": ")) + "\n"
