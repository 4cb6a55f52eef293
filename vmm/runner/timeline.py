"""`--timeline FILE`: the run in the Trace Event Format (JSON), which Perfetto's UI and
chrome://tracing open.

One process (pid 1, "pyvmm"), one track per vCPU (tid = the vCPU's index, named by a
`thread_name` metadata event). Each exit is a complete event (`"ph": "X"`) from the moment the
exit reached the monitor's dispatcher to the moment its handler returned and the vCPU went back
towards KVM_RUN, named by the exit's kind, with port, address, size and value as arguments; the
time in the guest shows as the gaps between slices. SPP violations (with the verdict) and stops
are instant events (`"ph": "i"`) on their vCPU's track; a counter track (`"ph": "C"`, tid 0)
gives exits per second in 10 ms buckets. Times are microseconds from the start of the run.

The records come from `ExitRecorder` (the vCPU threads only append tuples); this class formats
them on the writer thread.
"""

from __future__ import annotations

import json
import time
from binascii import unhexlify
from typing import Any

from vmm.runner.records import EXIT, IO_IN, IO_OUT, MMIO_READ, MMIO_WRITE, NOTE, SLOW, SPP, STOP, ExitRecorder

PID = 1
COUNTER_TID = 0  # the counter is per process; it goes on vCPU 0's tid, as viewers expect a tid
BUCKET_NS = 10_000_000  # exits per second are counted over 10 ms buckets


class ExitTimeline(ExitRecorder):
    def __init__(self, fd: int, vcpus: int) -> None:
        self.vcpus = vcpus
        self.buckets: dict[int, int] = {}  # bucket index -> exits starting in it
        super().__init__(fd)

    def header(self) -> str:
        meta = [{"ph": "M", "name": "process_name", "pid": PID, "tid": 0, "ts": 0, "args": {"name": "pyvmm"}}]
        for v in range(self.vcpus):
            meta.append({"ph": "M", "name": "thread_name", "pid": PID, "tid": v, "ts": 0,
                         "args": {"name": f"vCPU {v}"}})  # fmt: skip
            meta.append({"ph": "M", "name": "thread_sort_index", "pid": PID, "tid": v, "ts": 0,
                         "args": {"sort_index": v}})  # fmt: skip
        return "[\n" + "".join(json.dumps(m) + ",\n" for m in meta)

    def trailer(self) -> str:
        """The counter track, then the closing bracket (a viewer also opens a file cut short
        without it; a JSON parser needs it)."""
        scale = 1e9 / BUCKET_NS
        events = []
        for b in sorted(self.buckets):
            events.append(_counter(b * BUCKET_NS / 1e3, self.buckets[b] * scale))
            if b + 1 not in self.buckets:  # back to zero where no exit came
                events.append(_counter((b + 1) * BUCKET_NS / 1e3, 0))
        end = {"ph": "i", "s": "g", "name": "end of run", "pid": PID, "tid": 0,
               "ts": (time.perf_counter_ns() - self.start_ns) / 1e3}  # fmt: skip
        return "".join(e + ",\n" for e in events) + json.dumps(end) + "\n]\n"

    def format_batch(self, batch: list[Any]) -> bytes:
        start, buckets = self.start_ns, self.buckets
        out = []
        for r in batch:
            kind = r[0]
            if kind is SLOW and r[1] != EXIT:
                out.append(self._instant(r))
                continue
            t0, vcpu, dt = (r[2], r[3], r[5]) if kind is SLOW else (r[1], r[2], r[7])
            b = (t0 - start) // BUCKET_NS
            buckets[b] = buckets.get(b, 0) + 1
            out.append(_SLICE % (_name_and_args(r), vcpu, (t0 - start) / 1e3, dt / 1e3))
        return "".join(out).encode()

    def _instant(self, r: tuple[Any, ...]) -> str:
        start, what = self.start_ns, r[1]
        if what == STOP:
            _, _, t1, vcpu, status, reason = r
            args = json.dumps({"status": status, "reason": reason})
            return _INSTANT % (json.dumps(f"stop: {reason}"), vcpu, (t1 - start) / 1e3, args)
        if what == SPP:
            _, _, t, vcpu, gpa, verdict, text = r
            args = json.dumps({"verdict": verdict, "gpa": gpa, "what": text})
            return _INSTANT % (json.dumps(f"SPP {verdict}"), vcpu, (t - start) / 1e3, args)
        assert what == NOTE
        _, _, t, event, fields = r
        return _INSTANT % (json.dumps(event), fields.get("vcpu", 0), (t - start) / 1e3, json.dumps(fields))


def _name_and_args(r: tuple[Any, ...]) -> str:
    """The slice's `"name": ..., "args": {...}` part."""
    kind = r[0]
    if kind is IO_OUT or kind is IO_IN:
        _, _, _, _, port, size, value, _ = r
        w = "true" if kind is IO_OUT else "false"
        return f'"name": "IO", "args": {{"port": {port}, "size": {size}, "value": {value}, "write": {w}}}'
    if kind is MMIO_WRITE or kind is MMIO_READ:
        _, _, _, _, address, length, data, _ = r
        args: dict[str, Any] = {"address": address, "size": length, "write": kind is MMIO_WRITE}
        if data:
            args["value"] = int.from_bytes(unhexlify(data), "little")
        return f'"name": "MMIO", "args": {json.dumps(args)}'
    snapshot = dict(r[4])
    name = snapshot.pop("reason", "exit")
    snapshot.pop("vcpu", None)
    return f'"name": {json.dumps(name)}, "args": {json.dumps(snapshot)}'


def _counter(ts_us: float, per_second: float) -> str:
    return json.dumps({"ph": "C", "name": "exits per second", "pid": PID, "tid": COUNTER_TID, "ts": ts_us,
                       "args": {"exits/s": round(per_second)}})  # fmt: skip


_SLICE = '{"ph": "X", %s, "pid": 1, "tid": %d, "ts": %.3f, "dur": %.3f},\n'
_INSTANT = '{"ph": "i", "s": "t", "name": %s, "pid": 1, "tid": %d, "ts": %.3f, "args": %s},\n'
