"""Byte ranges (RFC 9110 14): a Range header read against a file's size, and the multipart/byteranges layout.

Pure functions of strings and integers; they never touch files or sockets. The load guards are nginx's: more
than max_ranges ranges, or ranges adding up to more than the file, get the whole file (200) instead, so a
Range header can never make a response larger than the file plus a bounded amount of part headers.
"""

import re

RANGE_UNIT = "bytes"  # RFC 9110 14.1: range units are case-insensitive
# RFC 9110 14.1.1: int-range = first-pos "-" [ last-pos ]; suffix-range = "-" suffix-length
RANGE_SPEC = re.compile(r"([0-9]+)-([0-9]*)|-([0-9]+)")
MAX_DIGITS = 18  # longer numbers are beyond any file: read as BEYOND rather than converted
BEYOND = 10 ** MAX_DIGITS
UNSATISFIABLE = ()  # no range of the header overlaps the file: 416


def position(digits):
    """A byte position from its decimal digits; absurdly long numbers become BEYOND (past every file)."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= MAX_DIGITS else BEYOND


def parse_range_specs(value, max_ranges):
    """The (first, last) pairs of a `bytes=` Range header, (None, length) for a suffix range, last None for
    "to the end". None when the header is to be ignored: another unit, invalid syntax (RFC 9110 14.2), a
    last-pos before its first-pos (14.1.1), or more than max_ranges ranges (nginx max_ranges)."""
    unit, equals, range_set = value.partition("=")
    if not equals or unit.lower() != RANGE_UNIT:
        return None
    elements = [element.strip(" \t") for element in range_set.split(",")]
    elements = [element for element in elements if element]  # RFC 9110 5.6.1: empty list elements are allowed
    if not elements or len(elements) > max_ranges:
        return None
    specs = []
    for element in elements:
        m = RANGE_SPEC.fullmatch(element)
        if m is None:
            return None
        first, last, suffix = m.groups()
        if suffix is not None:
            specs.append((None, position(suffix)))
            continue
        first = position(first)
        last = position(last) if last else None
        if last is not None and last < first:
            return None
        specs.append((first, last))
    return specs


def clamp(spec, size):
    """RFC 9110 14.1.2: the (first, last) bytes a spec covers in a `size`-byte file, or None if it is
    unsatisfiable (starts at or past the end, or asks for the last zero bytes)."""
    first, last = spec
    if first is None:
        return (max(size - last, 0), size - 1) if last > 0 else None
    if first >= size:
        return None
    return first, size - 1 if last is None or last >= size else last


def byte_ranges(value, size, max_ranges):
    """The (first, last) byte positions a Range header asks of a `size`-byte file, in the order asked.

    None: ignore the header and send the whole file (see parse_range_specs; also an empty file and ranges
    adding up to more than the file, as nginx does). UNSATISFIABLE (empty): none overlaps the file, 416.
    """
    specs = parse_range_specs(value, max_ranges)
    if specs is None or size == 0:
        return None
    ranges = tuple(r for r in (clamp(spec, size) for spec in specs) if r is not None)
    if sum(last - first + 1 for first, last in ranges) > size:
        return None
    return ranges


def content_range(first, last, size):
    """RFC 9110 14.4: a Content-Range field value."""
    return b"bytes %d-%d/%d" % (first, last, size)


def unsatisfied_range(size):
    """RFC 9110 14.4: the Content-Range field line of a 416."""
    return b"Content-Range: bytes */%d\r\n" % size


def multipart_layout(ranges, size, content_type, boundary):
    """RFC 9110 14.6: the framing of a multipart/byteranges body, as (part heads, closing delimiter, total
    body length); part i's bytes go right after part head i. Laid out as nginx does (CRLF before each
    delimiter). `content_type` and `boundary` are bytes."""
    heads = [b"\r\n--%s\r\nContent-Type: %s\r\nContent-Range: %s\r\n\r\n"
             % (boundary, content_type, content_range(first, last, size)) for first, last in ranges]
    closing = b"\r\n--%s--\r\n" % boundary
    length = sum(map(len, heads)) + len(closing) + sum(last - first + 1 for first, last in ranges)
    return heads, closing, length
