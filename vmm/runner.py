"""`pyvmm run`: build a machine from the options, run it, print what happened."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from .errors import ExitStatus
from .image import read_image
from .machine import Machine, open_trace
from .modes import CpuMode
from .observe import ExitStats, ExitTrace
from .spp.policyfile import load_policy
from .spp.spec import combine, read_spec_file
from .userfile import call_entry, load_user_file


@dataclass
class RunOptions:
    image: str
    mode: CpuMode = CpuMode.LONG
    load: int | None = None
    entry: int | None = None
    mem: int = 16 << 20
    handler_files: list[str] = field(default_factory=list)
    timeout: float | None = None
    stats: bool = False
    trace_path: str | None = None
    strict: bool = False
    quiet: bool = False
    spp_regions: list[str] = field(default_factory=list)
    spp_files: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    spp_backend: str = "auto"
    spp_abi: str | None = None

    @property
    def wants_spp(self) -> bool:
        return bool(self.spp_regions or self.spp_files or self.policies or self.spp_backend != "auto")


def run_image(o: RunOptions) -> int:
    image = read_image(o.image)  # before KVM: a bad path is reported even on a host without KVM
    regions = spp_requests(o)
    trace_file = open_trace(o.trace_path) if o.trace_path else None
    err = sys.stderr
    try:
        with Machine(o.mem, strict=o.strict) as m:
            m.load_flat(image, o.mode, o.load, o.entry)
            if o.wants_spp:
                spp = m.enable_spp(o.spp_backend, o.spp_abi)
                for page, mask in regions.items():
                    spp.protect(page, mask)
                for arg in o.policies:
                    load_policy(arg, spp)
            for path in o.handler_files:
                call_entry(load_user_file(path, "handlers"), path, "handlers", "setup", m)
            if o.stats:
                m.stats = ExitStats()
            if trace_file is not None:
                m.trace = ExitTrace(trace_file)
            result = m.run(timeout=o.timeout)
            if result.report:
                err.write(f"pyvmm: {result.reason}\n{result.report}\n")
            if m.stats is not None:
                err.write(m.stats.render() + "\n")
            if not o.quiet or (result.status != ExitStatus.OK and result.status % 2 == 0):
                err.write(
                    f"pyvmm: {result.reason}; exit status {result.status} after {result.exits} exits "
                    f"in {result.seconds:.3f} s\n"
                )
            return result.status
    finally:
        if trace_file is not None:
            trace_file.close()


def spp_requests(o: RunOptions) -> dict[int, int]:
    """Every --spp and --spp-file request, checked for disagreement, as page -> mask."""
    requests = [(f"--spp {r}", r) for r in o.spp_regions]
    for path in o.spp_files:
        requests += read_spec_file(path)
    return combine(requests)
