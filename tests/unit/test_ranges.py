"""Byte ranges (RFC 9110 14): parsing a Range header against a file size, nginx's load guards, multipart layout."""

from hypothesis import given
from hypothesis import strategies as st

from oserver.files.ranges import UNSATISFIABLE, byte_ranges, content_range, multipart_layout, unsatisfied_range

SIZE = 1000
MAX_RANGES = 4


def ranges_of(value, size=SIZE, max_ranges=MAX_RANGES):
    return byte_ranges(value, size, max_ranges)


def test_int_range_is_inclusive():
    assert ranges_of("bytes=0-499") == ((0, 499),)


def test_open_range_runs_to_the_end():
    assert ranges_of("bytes=900-") == ((900, 999),)


def test_suffix_range_is_the_last_bytes():
    assert ranges_of("bytes=-100") == ((900, 999),)


def test_last_pos_past_the_end_is_clamped():
    assert ranges_of("bytes=990-5000") == ((990, 999),)


def test_suffix_longer_than_the_file_is_the_whole_file():
    assert ranges_of("bytes=-5000") == ((0, 999),)


def test_single_byte_range():
    assert ranges_of("bytes=999-999") == ((999, 999),)


def test_unit_is_case_insensitive():
    assert ranges_of("Bytes=0-9") == ((0, 9),)


def test_whitespace_around_list_elements_is_allowed():
    assert ranges_of("bytes= 0-9 ,\t20-29") == ((0, 9), (20, 29))


def test_empty_list_elements_are_skipped():
    assert ranges_of("bytes=,0-9,,20-29,") == ((0, 9), (20, 29))


def test_ranges_keep_the_requested_order():
    assert ranges_of("bytes=500-509,0-9") == ((500, 509), (0, 9))


def test_leading_zeros_are_read_as_decimal():
    assert ranges_of("bytes=0010-0019") == ((10, 19),)


def test_first_pos_at_the_end_is_unsatisfiable():
    assert ranges_of("bytes=1000-") == UNSATISFIABLE


def test_zero_suffix_is_unsatisfiable():
    assert ranges_of("bytes=-0") == UNSATISFIABLE


def test_huge_first_pos_is_unsatisfiable():
    assert ranges_of("bytes=" + "9" * 40 + "-") == UNSATISFIABLE


def test_huge_last_pos_is_clamped():
    assert ranges_of("bytes=5-" + "9" * 40) == ((5, 999),)


def test_unsatisfiable_ranges_are_dropped_beside_satisfiable_ones():
    assert ranges_of("bytes=2000-3000,0-9") == ((0, 9),)


def test_other_unit_is_ignored():
    assert ranges_of("items=0-9") is None


def test_missing_equals_is_ignored():
    assert ranges_of("bytes 0-9") is None


def test_last_pos_before_first_pos_is_ignored():
    assert ranges_of("bytes=10-5") is None


def test_garbage_spec_is_ignored():
    assert ranges_of("bytes=abc") is None


def test_one_bad_spec_ignores_the_whole_header():
    assert ranges_of("bytes=0-9,x-y") is None


def test_bare_dash_is_ignored():
    assert ranges_of("bytes=-") is None


def test_empty_range_set_is_ignored():
    assert ranges_of("bytes=") is None


def test_negative_numbers_are_ignored():
    assert ranges_of("bytes=--5") is None


def test_empty_file_ignores_ranges():
    assert ranges_of("bytes=0-", size=0) is None


def test_max_ranges_are_served():
    assert len(ranges_of("bytes=0-0,2-2,4-4,6-6")) == MAX_RANGES


def test_more_than_max_ranges_is_ignored():
    assert ranges_of("bytes=0-0,2-2,4-4,6-6,8-8") is None


def test_ranges_adding_up_to_more_than_the_file_are_ignored():
    assert ranges_of("bytes=0-,0-") is None


def test_overlapping_ranges_within_the_file_size_are_served():
    assert ranges_of("bytes=0-99,50-149") == ((0, 99), (50, 149))


def test_content_range_value():
    assert content_range(0, 99, 1000) == b"bytes 0-99/1000"


def test_unsatisfied_range_field():
    assert unsatisfied_range(1000) == b"Content-Range: bytes */1000\r\n"


def test_multipart_layout_frames_each_part():
    heads, closing, _ = multipart_layout(((0, 1), (5, 9)), 10, b"text/plain", b"XYZ")
    assert heads == [b"\r\n--XYZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n",
                     b"\r\n--XYZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-9/10\r\n\r\n"]
    assert closing == b"\r\n--XYZ--\r\n"


def test_multipart_layout_length_counts_heads_data_and_closing():
    data = b"0123456789"
    ranges = ((0, 1), (5, 9))
    heads, closing, length = multipart_layout(ranges, len(data), b"text/plain", b"XYZ")
    body = b"".join(head + data[first:last + 1] for head, (first, last) in zip(heads, ranges)) + closing
    assert length == len(body)


range_spec = st.one_of(
    st.tuples(st.integers(0, 3000), st.none()).map(lambda r: f"{r[0]}-"),
    st.tuples(st.integers(0, 3000), st.integers(0, 3000)).map(lambda r: f"{min(r)}-{max(r)}"),
    st.integers(0, 3000).map(lambda n: f"-{n}"),
)


@given(st.integers(1, 2000), st.lists(range_spec, min_size=1, max_size=MAX_RANGES))
def test_served_ranges_lie_inside_the_file_and_never_exceed_it(size, specs):
    ranges = ranges_of("bytes=" + ",".join(specs), size=size)
    if ranges:
        assert all(0 <= first <= last < size for first, last in ranges)
        assert sum(last - first + 1 for first, last in ranges) <= size


@given(st.text(max_size=60))
def test_any_header_value_gives_ranges_none_or_unsatisfiable(value):
    ranges = ranges_of(value)
    assert ranges is None or isinstance(ranges, tuple)
