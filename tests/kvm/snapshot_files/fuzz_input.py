"""Handlers for the SPP snapshot test: at the fuzz-parser's SYNC stage 0, write an input with
three out-of-bounds table stores (idx >= 128, the protected sub-page) among legal records."""

from vmm.devices.ucall import SYNC, Ucall

INPUT = b"S\x05\x01P\x01S\x90\x02P\x02S\x10\x03S\xa0\x04P\x03S\xf0\x05E"


def setup(machine: object) -> None:
    ucall = machine.ucall  # type: ignore[attr-defined]
    memory = machine.memory  # type: ignore[attr-defined]

    def on_sync(call: Ucall) -> None:
        if call.args[0] == 0:
            memory.write(call.args[1], len(INPUT).to_bytes(4, "little") + INPUT)

    ucall.on(SYNC, on_sync)
