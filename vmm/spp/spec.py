"""Parsing protection requests from the command line and from --spp-file (pure functions).

Forms:  GPA[:MASK]   one 4 KiB page with a 32-bit write mask (default 0: every sub-page denied)
        START-END    bytes [START, END) denied, rounded outward to 128-byte sub-pages
Numbers take C notation or K/M/G suffixes. Two requests that give one page different masks
disagree and are refused; byte ranges combine (a sub-page denied by any of them stays denied).
"""

from __future__ import annotations

from vmm.errors import SppRequestError
from vmm.inputs import TEXT_FILE_LIMIT, InputFileError, read_regular
from vmm.numbers import parse_int
from vmm.spp.masks import FULL, PAGE, check_mask, check_page, mask_for_bytes


def parse_request(text: str) -> tuple[str, int, int]:
    """('page', gpa, mask) or ('bytes', start, end)."""
    t = text.strip()
    try:
        if "-" in t:
            a, b = t.split("-", 1)
            start, end = parse_int(a, "start address"), parse_int(b, "end address")
            if end <= start:
                raise SppRequestError(f"SPP byte range {t!r} is empty (end must be above start)")
            return ("bytes", start, end)
        gpa_text, _, mask_text = t.partition(":")
        gpa = check_page(parse_int(gpa_text, "SPP page address"))
        mask = check_mask(parse_int(mask_text, "SPP write mask")) if mask_text else 0
        return ("page", gpa, mask)
    except ValueError as e:
        raise SppRequestError(f"bad SPP region {t!r}: {e}") from None


def combine(requests: list[tuple[str, str]], ram_size: int | None = None) -> dict[int, int]:
    """Page -> mask for (origin, text) requests; origin names where each came from in errors.
    With `ram_size`, a byte range covering more pages than the guest has is refused by
    arithmetic, before a page of it is built (the RAM check of each page comes later)."""
    explicit: dict[int, tuple[int, str]] = {}
    from_bytes: dict[int, int] = {}
    for origin, text in requests:
        try:
            kind, a, b = parse_request(text)
        except SppRequestError as e:
            raise SppRequestError(f"{origin}: {e}") from None
        if kind == "page":
            prev = explicit.get(a)
            if prev is not None and prev[0] != b:
                raise SppRequestError(
                    f"{origin}: page {a:#x} is given mask {b:#010x} here and {prev[0]:#010x} at {prev[1]}"
                )
            explicit[a] = (b, origin)
        else:
            pages = (b - (a & ~(PAGE - 1)) + PAGE - 1) // PAGE
            if ram_size is not None and pages > ram_size // PAGE:
                raise SppRequestError(
                    f"{origin}: SPP byte range {a:#x}-{b:#x} covers {pages} pages, more than guest RAM's "
                    f"{ram_size // PAGE}"
                )
            for page in range(a & ~(PAGE - 1), b, PAGE):
                from_bytes[page] = from_bytes.get(page, FULL) & mask_for_bytes(page, a, b)
    out = {p: m for p, (m, _) in explicit.items()}
    for page, mask in from_bytes.items():
        out[page] = out.get(page, FULL) & mask
    return out


def read_spec_file(path: str) -> list[tuple[str, str]]:
    """(origin, text) per request line of an --spp-file; '#' starts a comment."""
    try:
        lines = read_regular(path, TEXT_FILE_LIMIT).decode().splitlines()
    except InputFileError as e:
        raise SppRequestError(f"SPP file {path!r} {e}") from None
    except UnicodeDecodeError as e:
        raise SppRequestError(f"SPP file {path!r} is not text: {e}") from None
    out: list[tuple[str, str]] = []
    for n, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if text:
            out.extend((f"{path}:{n}", word) for word in text.split())
    return out
