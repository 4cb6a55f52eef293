"""`--timeline FILE`: the run in the Trace Event Format (JSON), which Perfetto's UI and
chrome://tracing open.

One process (pid 1, "pyvmm"), one track per vCPU (tid = the vCPU's index, named by a
`thread_name` metadata event). Each exit is a complete event (`"ph": "X"`) from the moment the
run loop got the exit back from KVM_RUN to the moment it went into KVM_RUN again (the handler and
the loop's own work; the ioctl's own call and return and the decoding in `Vcpu.run`, a few hundred
ns, fall in the gaps), named by the exit's kind, with port, address, size and value as arguments;
the time in the guest shows as the gaps between slices. SPP violations (with the verdict) and stops
are instant events (`"ph": "i"`) on their vCPU's track; a counter track (`"ph": "C"`, tid 0)
gives exits per second in 10 ms buckets. Times are microseconds from the start of the run.

The records come from `vmm.runner.records` (the vCPU threads only hand over flat tuples); this
class formats them on the writer thread, one at a time.
"""

from __future__ import annotations

import json
import time
from binascii import unhexlify

from vmm.runner.records import EXIT, KIND, NOTE, SLOW, SPP, STOP, WIDTH, ExitRecorder, Kind, Site, Slow, mmio_where

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any

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
        start, buckets, kind_of = self.start_ns, self.buckets, KIND
        out = []
        for i in range(0, len(batch), WIDTH):
            r = batch[i : i + WIDTH]
            kind = r[0]
            if kind is SLOW:
                s: Slow = r[1]
                if s.what != EXIT:
                    out.append(self._instant(s))
                    continue
                t0, vcpu, snapshot, dur = s.fields
                named = _exit_name_and_args(snapshot)
            else:
                k = kind_of[kind]
                t0, vcpu, dur = r[1], k.vcpu, r[4]
                named = _name_and_args(k, r)
            b = (t0 - start) // BUCKET_NS
            buckets[b] = buckets.get(b, 0) + 1
            out.append(_SLICE % (named, vcpu, (t0 - start) / 1e3, dur / 1e3))
        return "".join(out).encode()

    def _instant(self, s: Slow) -> str:
        start, what = self.start_ns, s.what
        if what == STOP:
            t1, vcpu, status, reason = s.fields
            args = json.dumps({"status": status, "reason": reason})
            return _INSTANT % (json.dumps(f"stop: {reason}"), vcpu, (t1 - start) / 1e3, args)
        if what == SPP:
            t, vcpu, gpa, verdict, text = s.fields
            args = json.dumps({"verdict": verdict, "gpa": gpa, "what": text})
            return _INSTANT % (json.dumps(f"SPP {verdict}"), vcpu, (t - start) / 1e3, args)
        assert what == NOTE
        t, event, fields = s.fields
        return _INSTANT % (json.dumps(event), fields.get("vcpu", 0), (t - start) / 1e3, json.dumps(fields))


def _name_and_args(kind: Kind, r: list[Any]) -> str:
    """A port or MMIO slice's `"name": ..., "args": {...}` part."""
    site: Site = r[2]
    w = "true" if kind.write else "false"
    if kind.reason == "IO":
        return f'"name": "IO", "args": {{"port": {site.port}, "size": {site.size}, "value": {r[3]}, "write": {w}}}'
    address, data = mmio_where(r[3])
    args: dict[str, Any] = {"address": address, "size": site.size, "write": kind.write}
    if data:
        args["value"] = int.from_bytes(unhexlify(data), "little")
    return f'"name": "MMIO", "args": {json.dumps(args)}'


def _exit_name_and_args(snapshot: dict[str, Any]) -> str:
    args = dict(snapshot)
    name = args.pop("reason", "exit")
    args.pop("vcpu", None)
    return f'"name": {json.dumps(name)}, "args": {json.dumps(args)}'


def _counter(ts_us: float, per_second: float) -> str:
    return json.dumps({"ph": "C", "name": "exits per second", "pid": PID, "tid": COUNTER_TID, "ts": ts_us,
                       "args": {"exits/s": round(per_second)}})  # fmt: skip


_SLICE = '{"ph": "X", %s, "pid": 1, "tid": %d, "ts": %.3f, "dur": %.3f},\n'
_INSTANT = '{"ph": "i", "s": "t", "name": %s, "pid": 1, "tid": %d, "ts": %.3f, "args": %s},\n'
