"""Conditional requests (RFC 9110 13): HTTP-date and entity-tag parsing, and the 13.2.2 evaluation order.

Pure functions of header values and a file's validators (its ETag and Last-Modified second); they never
touch files or sockets. Parsed dates and tag lists are cached: browsers send the same values again and again.
"""

import calendar
import re
import time
from functools import lru_cache

from oserver.http.grammar import ENTITY_TAG_ITEM

PROCEED, NOT_MODIFIED, PRECONDITION_FAILED = 200, 304, 412
SAFE_METHODS = ("GET", "HEAD")  # the methods If-Modified-Since and a 304 apply to (RFC 9110 13.1.3, 13.1.2)
PARSE_CACHE_SIZE = 1024
CACHED_VALUE_LENGTH = 256  # longer header values are parsed every time, so they cannot fill the caches

# RFC 9110 5.6.7: HTTP-date = IMF-fixdate / obs-date, and HTTP-date is case-sensitive.
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MONTH = "(" + "|".join(MONTHS) + ")"
DAY_NAME = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
DAY_NAME_L = "(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
TIME_OF_DAY = r"([0-9]{2}):([0-9]{2}):([0-9]{2})"
# IMF-fixdate = day-name "," SP 2DIGIT SP month SP 4DIGIT SP time-of-day SP GMT
IMF_FIXDATE = re.compile(DAY_NAME + r", ([0-9]{2}) " + MONTH + r" ([0-9]{4}) " + TIME_OF_DAY + " GMT")
# rfc850-date = day-name-l "," SP 2DIGIT "-" month "-" 2DIGIT SP time-of-day SP GMT
RFC850_DATE = re.compile(DAY_NAME_L + r", ([0-9]{2})-" + MONTH + r"-([0-9]{2}) " + TIME_OF_DAY + " GMT")
# asctime-date = day-name SP month SP ( 2DIGIT / ( SP DIGIT ) ) SP time-of-day SP 4DIGIT
ASCTIME_DATE = re.compile(DAY_NAME + " " + MONTH + r" ([0-9]{2}| [0-9]) " + TIME_OF_DAY + r" ([0-9]{4})")
RFC850_PIVOT_YEARS = 50  # RFC 9110 5.6.7: a two-digit year more than 50 years ahead is in the past century



def cache_short_values(function):
    """Memoise a parser of one header value, keeping only values up to CACHED_VALUE_LENGTH characters."""
    cached = lru_cache(maxsize=PARSE_CACHE_SIZE)(function)

    def parse(value):
        return cached(value) if len(value) <= CACHED_VALUE_LENGTH else function(value)
    parse.__doc__ = function.__doc__
    return parse


@cache_short_values
def parse_http_date(value):
    """Seconds since the epoch for an HTTP-date in any of its three forms, or None when it is not one."""
    m = IMF_FIXDATE.fullmatch(value)
    if m is not None:
        day, month, year, hour, minute, second = m.groups()
        return timestamp(int(year), month, day, hour, minute, second)
    m = RFC850_DATE.fullmatch(value)
    if m is not None:
        day, month, year, hour, minute, second = m.groups()
        return timestamp(full_year(int(year)), month, day, hour, minute, second)
    m = ASCTIME_DATE.fullmatch(value)
    if m is not None:
        month, day, hour, minute, second, year = m.groups()
        return timestamp(int(year), month, day, hour, minute, second)
    return None


def full_year(two_digits, current_year=None):
    """RFC 9110 5.6.7: the year an rfc850-date's two digits stand for, never more than 50 years ahead."""
    if current_year is None:
        current_year = time.gmtime().tm_year
    year = current_year - current_year % 100 + two_digits
    return year - 100 if year > current_year + RFC850_PIVOT_YEARS else year


def timestamp(year, month_name, day, hour, minute, second):
    """Epoch seconds for a UTC calendar time, or None when a field is out of range (day 31 of April, 25:00)."""
    month = MONTHS.index(month_name) + 1
    day, hour, minute, second = int(day), int(hour), int(minute), int(second)
    if not 1 <= day <= calendar.monthrange(year, month)[1] or hour > 23 or minute > 59 or second > 60:
        return None  # second 60 is a leap second (RFC 9110 5.6.7)
    return calendar.timegm((year, month, day, hour, minute, second))


@cache_short_values
def entity_tags(value):
    """The (weak, opaque-tag) pairs of an If-Match / If-None-Match list, or None when it is malformed.
    The opaque tag keeps its quotes, so it compares directly with an ETag field value."""
    tags = []
    pos = 0
    while pos < len(value):
        m = ENTITY_TAG_ITEM.match(value, pos)
        if m is None:
            return None
        tags.append((m[1] is not None, m[2]))
        pos = m.end()
    return tuple(tags) or None


def if_match_holds(value, etag):
    """RFC 9110 13.1.1: "*" or a strong match with the current ETag; a malformed list matches nothing."""
    if value.strip(" \t") == "*":
        return True
    tags = entity_tags(value)
    return tags is not None and any(not weak and tag == etag for weak, tag in tags)


def if_none_match_holds(value, etag):
    """RFC 9110 13.1.2: false for "*" or a weak match with the current ETag (a malformed list: true)."""
    if value.strip(" \t") == "*":
        return False
    tags = entity_tags(value)
    return tags is None or all(tag != etag for weak, tag in tags)


def modified_since(value, last_modified):
    """RFC 9110 13.1.3: has the file changed after the date? None when the date is invalid (ignored)."""
    date = parse_http_date(value)
    return None if date is None else last_modified > date


def evaluate_preconditions(method, headers, etag, last_modified):
    """RFC 9110 13.2.2: PROCEED, NOT_MODIFIED (304) or PRECONDITION_FAILED (412) for a request's
    If-Match / If-Unmodified-Since / If-None-Match / If-Modified-Since against a file's validators."""
    if_match = headers.get("if-match")
    if if_match is not None:  # step 1
        if not if_match_holds(if_match, etag):
            return PRECONDITION_FAILED
    elif "if-unmodified-since" in headers:  # step 2
        if modified_since(headers["if-unmodified-since"], last_modified):
            return PRECONDITION_FAILED
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:  # step 3
        if not if_none_match_holds(if_none_match, etag):
            return NOT_MODIFIED if method in SAFE_METHODS else PRECONDITION_FAILED
    elif "if-modified-since" in headers and method in SAFE_METHODS:  # step 4
        if modified_since(headers["if-modified-since"], last_modified) is False:
            return NOT_MODIFIED
    return PROCEED


def if_range_holds(value, etag, last_modified):
    """RFC 9110 13.1.5: does If-Range name the current file, by a strong ETag match or its exact
    Last-Modified date? When it does not, the Range is ignored and the whole file is sent."""
    value = value.strip(" \t")
    if value.startswith('"'):
        return value == etag
    return parse_http_date(value) == last_modified
