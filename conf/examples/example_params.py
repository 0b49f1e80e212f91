"""Query parameters for the example handlers: one bounded integer read from a raw query string.

Shared by cpu_bound.py and io_bound.py so that both refuse the same way what they cannot accept.
"""

import urllib.parse


class BadParameter(ValueError):
    """A query parameter that is not an integer in its allowed range; the handler answers 400."""


def bounded_int(query, name, default, maximum):
    """The integer `name` from the raw query string, `default` when absent; 0..maximum or BadParameter."""
    values = urllib.parse.parse_qs(query).get(name)
    if not values:
        return default
    try:
        value = int(values[0])
    except ValueError:
        raise BadParameter(f"{name} must be an integer, not {values[0]!r}") from None
    if not 0 <= value <= maximum:
        raise BadParameter(f"{name} must be between 0 and {maximum}, not {value}")
    return value


def text_response(status, text):
    """A small text/plain answer as a mount handler returns it: (status, headers, body)."""
    return status, [("Content-Type", "text/plain; charset=utf-8")], text.encode()
