"""Conditional requests (RFC 9110 13): HTTP-date forms, entity-tag lists, If-Range and the 13.2.2 order."""

import calendar

from oserver.files.conditional import (NOT_MODIFIED, PRECONDITION_FAILED, PROCEED, entity_tags, evaluate_preconditions,
                                       full_year, if_range_holds, parse_http_date)

NOV_6_1994 = calendar.timegm((1994, 11, 6, 8, 49, 37))
ETAG = '"5f3e-20-1a"'
LAST_MODIFIED = NOV_6_1994
EARLIER = "Sat, 05 Nov 1994 08:49:37 GMT"
SAME = "Sun, 06 Nov 1994 08:49:37 GMT"
LATER = "Mon, 07 Nov 1994 08:49:37 GMT"


def evaluate(method="GET", **fields):
    headers = {name.replace("_", "-"): value for name, value in fields.items()}
    return evaluate_preconditions(method, headers, ETAG, LAST_MODIFIED)


# ---------------------------------------------------------------- HTTP-date (RFC 9110 5.6.7)

def test_imf_fixdate_is_parsed():
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == NOV_6_1994


def test_rfc850_date_is_parsed():
    assert parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == NOV_6_1994


def test_asctime_date_is_parsed():
    assert parse_http_date("Sun Nov  6 08:49:37 1994") == NOV_6_1994


def test_asctime_date_with_two_digit_day_is_parsed():
    assert parse_http_date("Thu Nov 10 08:49:37 1994") == calendar.timegm((1994, 11, 10, 8, 49, 37))


def test_date_is_case_sensitive():
    assert parse_http_date("sun, 06 nov 1994 08:49:37 gmt") is None


def test_date_with_other_zone_is_invalid():
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC") is None


def test_impossible_day_is_invalid():
    assert parse_http_date("Thu, 31 Apr 2025 10:00:00 GMT") is None


def test_impossible_hour_is_invalid():
    assert parse_http_date("Sun, 06 Nov 1994 24:00:00 GMT") is None


def test_leap_second_is_accepted():
    assert parse_http_date("Sat, 31 Dec 2016 23:59:60 GMT") == calendar.timegm((2017, 1, 1, 0, 0, 0))


def test_garbage_date_is_invalid():
    assert parse_http_date("yesterday") is None


def test_two_dates_joined_are_invalid():
    assert parse_http_date(SAME + ", " + LATER) is None


def test_rfc850_year_in_this_century():
    assert full_year(24, current_year=2025) == 2024


def test_rfc850_year_more_than_fifty_years_ahead_is_last_century():
    assert full_year(94, current_year=2025) == 1994


def test_rfc850_year_up_to_fifty_years_ahead_stays_ahead():
    assert full_year(75, current_year=2025) == 2075


# ---------------------------------------------------------------- entity tags (RFC 9110 8.8.3)

def test_entity_tag_list_is_parsed_with_weakness():
    assert entity_tags('"a", W/"b",  "c,d"') == ((False, '"a"'), (True, '"b"'), (False, '"c,d"'))


def test_unquoted_entity_tag_is_malformed():
    assert entity_tags("abc") is None


def test_empty_entity_tag_list_is_malformed():
    assert entity_tags("") is None


# ---------------------------------------------------------------- If-Match, If-Unmodified-Since -> 412

def test_if_match_with_current_etag_proceeds():
    assert evaluate(if_match=ETAG) == PROCEED


def test_if_match_in_a_list_proceeds():
    assert evaluate(if_match=f'"other", {ETAG}') == PROCEED


def test_if_match_with_other_etag_fails():
    assert evaluate(if_match='"other"') == PRECONDITION_FAILED


def test_if_match_uses_strong_comparison():
    assert evaluate(if_match="W/" + ETAG) == PRECONDITION_FAILED


def test_if_match_star_proceeds():
    assert evaluate(if_match="*") == PROCEED


def test_malformed_if_match_fails():
    assert evaluate(if_match="garbage") == PRECONDITION_FAILED


def test_if_unmodified_since_after_last_modified_proceeds():
    assert evaluate(if_unmodified_since=LATER) == PROCEED


def test_if_unmodified_since_equal_to_last_modified_proceeds():
    assert evaluate(if_unmodified_since=SAME) == PROCEED


def test_if_unmodified_since_before_last_modified_fails():
    assert evaluate(if_unmodified_since=EARLIER) == PRECONDITION_FAILED


def test_invalid_if_unmodified_since_is_ignored():
    assert evaluate(if_unmodified_since="not a date") == PROCEED


def test_if_match_takes_precedence_over_if_unmodified_since():
    assert evaluate(if_match=ETAG, if_unmodified_since=EARLIER) == PROCEED


# ---------------------------------------------------------------- If-None-Match, If-Modified-Since -> 304

def test_if_none_match_with_current_etag_is_not_modified():
    assert evaluate(if_none_match=ETAG) == NOT_MODIFIED


def test_if_none_match_uses_weak_comparison():
    assert evaluate(if_none_match="W/" + ETAG) == NOT_MODIFIED


def test_if_none_match_with_other_etag_proceeds():
    assert evaluate(if_none_match='"other"') == PROCEED


def test_if_none_match_star_is_not_modified():
    assert evaluate(if_none_match="*") == NOT_MODIFIED


def test_malformed_if_none_match_proceeds():
    assert evaluate(if_none_match="garbage") == PROCEED


def test_if_none_match_on_other_methods_fails():
    assert evaluate("DELETE", if_none_match=ETAG) == PRECONDITION_FAILED


def test_if_modified_since_equal_to_last_modified_is_not_modified():
    assert evaluate(if_modified_since=SAME) == NOT_MODIFIED


def test_if_modified_since_after_last_modified_is_not_modified():
    assert evaluate(if_modified_since=LATER) == NOT_MODIFIED


def test_if_modified_since_before_last_modified_proceeds():
    assert evaluate(if_modified_since=EARLIER) == PROCEED


def test_invalid_if_modified_since_is_ignored():
    assert evaluate(if_modified_since="Sun, 06 Nov 1994 08:49:37 CET") == PROCEED


def test_if_modified_since_applies_to_head():
    assert evaluate("HEAD", if_modified_since=SAME) == NOT_MODIFIED


def test_if_modified_since_is_ignored_on_other_methods():
    assert evaluate("POST", if_modified_since=SAME) == PROCEED


def test_if_none_match_takes_precedence_over_if_modified_since():
    assert evaluate(if_none_match='"other"', if_modified_since=SAME) == PROCEED


def test_failed_if_match_wins_over_not_modified():
    assert evaluate(if_match='"other"', if_none_match=ETAG) == PRECONDITION_FAILED


def test_failed_if_unmodified_since_wins_over_not_modified():
    assert evaluate(if_unmodified_since=EARLIER, if_modified_since=SAME) == PRECONDITION_FAILED


def test_no_preconditions_proceed():
    assert evaluate() == PROCEED


# ---------------------------------------------------------------- If-Range (RFC 9110 13.1.5)

def test_if_range_with_current_etag_holds():
    assert if_range_holds(ETAG, ETAG, LAST_MODIFIED)


def test_if_range_with_other_etag_does_not_hold():
    assert not if_range_holds('"other"', ETAG, LAST_MODIFIED)


def test_if_range_with_weak_etag_does_not_hold():
    assert not if_range_holds("W/" + ETAG, ETAG, LAST_MODIFIED)


def test_if_range_with_exact_date_holds():
    assert if_range_holds(SAME, ETAG, LAST_MODIFIED)


def test_if_range_with_later_date_does_not_hold():
    assert not if_range_holds(LATER, ETAG, LAST_MODIFIED)


def test_if_range_with_invalid_date_does_not_hold():
    assert not if_range_holds("whenever", ETAG, LAST_MODIFIED)


def test_long_if_none_match_list_is_parsed_without_the_cache():
    value = ", ".join(f'"{n}"' for n in range(100)) + ", " + ETAG
    assert evaluate(if_none_match=value) == NOT_MODIFIED
