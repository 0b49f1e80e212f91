"""HTTP semantics a file server owes its clients, against the real server: validators, conditional requests
(304 / 412), byte ranges (206 / 416, multipart, resumption, offsets beyond 4 GiB), precompressed variants,
Cache-Control, directory listings and the charset option.
"""

import email.parser
import gzip
import hashlib
import os
import re
import socket
import time

import pytest
import requests

from oserver.http.response import http_date

TIMEOUT = 30
TEXT = bytes(range(256)) * 4  # 1 KiB of every byte value: kept in memory by the server
BIG_NAME = "big.bin"
BIG = hashlib.sha256(b"seed").digest() * 8192  # 256 KiB: larger than small_file_max, sent with sendfile
GIB = 1 << 30
SPARSE_SIZE = 6 * GIB
EARLIER = "Sat, 01 Jan 2000 00:00:00 GMT"
LATER = "Fri, 01 Jan 2100 00:00:00 GMT"
CHANGE_DEADLINE = 15.0
FRESH_ANSWERS = 10  # consecutive answers (on fresh connections, so from either worker) showing a change


class Answer:
    """A response with its raw (never decoded) body."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body


def fetch(server, path, method="GET", **fields):
    """One request with header fields given as keyword arguments (if_none_match=...); no Accept-Encoding
    unless given, and the body exactly as sent."""
    headers = {"Accept-Encoding": "identity"}
    headers.update({name.replace("_", "-").title(): value for name, value in fields.items()})
    with requests.request(method, server.url + path, headers=headers, stream=True, timeout=TIMEOUT) as response:
        return Answer(response.status_code, response.headers, response.raw.read(decode_content=False))


@pytest.fixture
def site(tmp_path, start_server):
    """Factory: site(*flags, files={name: bytes}) -> a server on a fresh root holding text.bin and big.bin."""
    def start(*flags, files=None):
        root = tmp_path / "site"
        root.mkdir()
        (root / "text.bin").write_bytes(TEXT)
        (root / BIG_NAME).write_bytes(BIG)
        for name, data in (files or {}).items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if data is None:
                path.mkdir()
            else:
                path.write_bytes(data)
        return start_server(*flags, root=str(root), ready_path="/text.bin")
    return start


def mtime_date(server, name):
    return http_date(int(os.stat(os.path.join(server.root, name)).st_mtime))


# ---------------------------------------------------------------- validators

def test_file_carries_a_strong_etag(site):
    etag = fetch(site(), "/text.bin").headers["ETag"]
    assert re.fullmatch(r'"[^"]+"', etag)


def test_file_carries_its_last_modified_date(site):
    server = site()
    assert fetch(server, "/text.bin").headers["Last-Modified"] == mtime_date(server, "text.bin")


def test_file_advertises_byte_ranges(site):
    assert fetch(site(), "/text.bin").headers["Accept-Ranges"] == "bytes"


def test_etag_changes_when_the_file_changes(site):
    server = site()
    old = fetch(server, "/text.bin").headers["ETag"]
    path = os.path.join(server.root, "text.bin")
    with open(path, "ab") as f:
        f.write(b"more")
    # each worker notices within open_file_cache_valid: wait until every answer, from any worker, is new
    deadline = time.monotonic() + CHANGE_DEADLINE
    new_in_a_row = 0
    while new_in_a_row < FRESH_ANSWERS and time.monotonic() < deadline:
        if fetch(server, "/text.bin").headers["ETag"] != old:
            new_in_a_row += 1
        else:
            new_in_a_row = 0
            time.sleep(0.05)
    assert new_in_a_row == FRESH_ANSWERS


# ---------------------------------------------------------------- conditional requests: 304

def test_if_none_match_round_trip_is_304_with_validators_and_no_body(site):
    server = site()
    first = fetch(server, "/text.bin")
    again = fetch(server, "/text.bin", if_none_match=first.headers["ETag"])
    assert (again.status, again.body) == (304, b"")
    assert again.headers["ETag"] == first.headers["ETag"]
    assert again.headers["Last-Modified"] == first.headers["Last-Modified"]


def test_if_modified_since_round_trip_is_304_with_validators_and_no_body(site):
    server = site()
    first = fetch(server, "/text.bin")
    again = fetch(server, "/text.bin", if_modified_since=first.headers["Last-Modified"])
    assert (again.status, again.body) == (304, b"")
    assert (again.headers["ETag"], again.headers["Last-Modified"]) == (first.headers["ETag"],
                                                                      first.headers["Last-Modified"])


def test_if_modified_since_later_date_is_304(site):
    assert fetch(site(), "/text.bin", if_modified_since=LATER).status == 304


def test_head_revalidation_is_304(site):
    server = site()
    etag = fetch(server, "/text.bin").headers["ETag"]
    assert fetch(server, "/text.bin", "HEAD", if_none_match=etag).status == 304


def test_if_none_match_with_another_etag_is_200(site):
    answer = fetch(site(), "/text.bin", if_none_match='"stale"')
    assert (answer.status, answer.body) == (200, TEXT)


def test_if_modified_since_before_last_modified_is_200(site):
    answer = fetch(site(), "/text.bin", if_modified_since=EARLIER)
    assert (answer.status, answer.body) == (200, TEXT)


def test_invalid_if_modified_since_is_ignored(site):
    assert fetch(site(), "/text.bin", if_modified_since="2100-01-01").status == 200


def test_rfc850_if_modified_since_is_understood(site):
    assert fetch(site(), "/text.bin", if_modified_since="Friday, 01-Jan-99 00:00:00 GMT").status == 200


def test_if_none_match_wins_over_if_modified_since(site):
    server = site()
    last_modified = mtime_date(server, "text.bin")
    assert fetch(server, "/text.bin", if_none_match='"stale"', if_modified_since=last_modified).status == 200


def test_304_leaves_the_connection_usable(site):
    server = site()
    etag = fetch(server, "/text.bin").headers["ETag"]
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        sock.sendall(f"GET /text.bin HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n"
                     "GET /text.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 304 ")
    assert b"\r\n\r\nHTTP/1.1 200 OK\r\n" in received and received.endswith(TEXT)


# ---------------------------------------------------------------- conditional requests: 412

def test_if_match_with_another_etag_is_412(site):
    assert fetch(site(), "/text.bin", if_match='"stale"').status == 412


def test_if_match_with_the_current_etag_is_200(site):
    server = site()
    etag = fetch(server, "/text.bin").headers["ETag"]
    assert fetch(server, "/text.bin", if_match=etag).status == 200


def test_if_unmodified_since_before_last_modified_is_412(site):
    assert fetch(site(), "/text.bin", if_unmodified_since=EARLIER).status == 412


def test_if_unmodified_since_later_date_is_200(site):
    assert fetch(site(), "/text.bin", if_unmodified_since=LATER).status == 200


def test_failed_if_match_wins_over_if_none_match(site):
    server = site()
    etag = fetch(server, "/text.bin").headers["ETag"]
    assert fetch(server, "/text.bin", if_match='"stale"', if_none_match=etag).status == 412


def test_preconditions_do_not_apply_to_a_missing_file(site):
    assert fetch(site(), "/missing.bin", if_match='"any"').status == 404


# ---------------------------------------------------------------- ranges

def test_range_is_206_with_content_range(site):
    answer = fetch(site(), "/text.bin", range="bytes=10-19")
    assert (answer.status, answer.body) == (206, TEXT[10:20])
    assert answer.headers["Content-Range"] == f"bytes 10-19/{len(TEXT)}"
    assert answer.headers["Content-Length"] == "10"


def test_open_range_runs_to_the_end(site):
    answer = fetch(site(), "/text.bin", range="bytes=1000-")
    assert (answer.status, answer.body) == (206, TEXT[1000:])


def test_suffix_range_is_the_last_bytes(site):
    answer = fetch(site(), "/text.bin", range="bytes=-24")
    assert (answer.status, answer.body) == (206, TEXT[-24:])
    assert answer.headers["Content-Range"] == f"bytes 1000-1023/{len(TEXT)}"


def test_range_past_the_end_is_clamped(site):
    answer = fetch(site(), "/text.bin", range="bytes=1020-99999")
    assert (answer.status, answer.body) == (206, TEXT[1020:])


def test_range_of_a_large_file_is_sent_exactly(site):
    answer = fetch(site(), f"/{BIG_NAME}", range="bytes=100000-199999")
    assert (answer.status, answer.body) == (206, BIG[100000:200000])


def test_unsatisfiable_range_is_416_with_the_size(site):
    answer = fetch(site(), "/text.bin", range="bytes=5000-")
    assert answer.status == 416
    assert answer.headers["Content-Range"] == f"bytes */{len(TEXT)}"


def test_invalid_range_is_ignored(site):
    answer = fetch(site(), "/text.bin", range="bytes=20-10")
    assert (answer.status, answer.body) == (200, TEXT)


def test_range_in_another_unit_is_ignored(site):
    assert fetch(site(), "/text.bin", range="lines=1-2").status == 200


def test_range_on_head_is_ignored(site):
    answer = fetch(site(), "/text.bin", "HEAD", range="bytes=0-9")
    assert (answer.status, answer.headers["Content-Length"]) == (200, str(len(TEXT)))


def test_range_on_a_missing_file_is_404(site):
    assert fetch(site(), "/missing.bin", range="bytes=0-9").status == 404


def test_if_range_with_the_current_etag_serves_the_range(site):
    server = site()
    etag = fetch(server, "/text.bin").headers["ETag"]
    assert fetch(server, "/text.bin", range="bytes=0-9", if_range=etag).status == 206


def test_if_range_with_an_old_etag_serves_the_whole_file(site):
    answer = fetch(site(), "/text.bin", range="bytes=0-9", if_range='"old"')
    assert (answer.status, answer.body) == (200, TEXT)


def test_if_range_with_the_last_modified_date_serves_the_range(site):
    server = site()
    assert fetch(server, "/text.bin", range="bytes=0-9", if_range=mtime_date(server, "text.bin")).status == 206


def test_if_range_with_another_date_serves_the_whole_file(site):
    assert fetch(site(), "/text.bin", range="bytes=0-9", if_range=EARLIER).status == 200


def test_range_is_ignored_when_if_none_match_gives_304(site):
    server = site()
    etag = fetch(server, "/text.bin").headers["ETag"]
    assert fetch(server, "/text.bin", range="bytes=0-9", if_none_match=etag).status == 304


def multipart_parts(answer):
    """(Content-Range, Content-Type, payload) of each part of a multipart/byteranges body."""
    message = email.parser.BytesParser().parsebytes(
        b"Content-Type: " + answer.headers["Content-Type"].encode() + b"\r\n\r\n" + answer.body)
    assert message.is_multipart()
    return [(part["Content-Range"], part["Content-Type"], part.get_payload(decode=True))
            for part in message.get_payload()]


def test_multiple_ranges_are_a_multipart_body(site):
    answer = fetch(site(), "/text.bin", range="bytes=0-9,500-519,-5")
    assert answer.status == 206
    assert answer.headers["Content-Type"].startswith("multipart/byteranges; boundary=")
    assert int(answer.headers["Content-Length"]) == len(answer.body)
    assert multipart_parts(answer) == [
        (f"bytes 0-9/{len(TEXT)}", "application/octet-stream", TEXT[0:10]),
        (f"bytes 500-519/{len(TEXT)}", "application/octet-stream", TEXT[500:520]),
        (f"bytes 1019-1023/{len(TEXT)}", "application/octet-stream", TEXT[1019:]),
    ]


def test_multiple_ranges_of_a_large_file_are_a_multipart_body(site):
    answer = fetch(site(), f"/{BIG_NAME}", range="bytes=0-65535,200000-")
    assert [payload for _, _, payload in multipart_parts(answer)] == [BIG[:65536], BIG[200000:]]


def test_unsatisfiable_ranges_are_left_out_of_multipart(site):
    answer = fetch(site(), "/text.bin", range="bytes=5000-6000,0-3")
    assert (answer.status, answer.headers["Content-Range"], answer.body) == (206, f"bytes 0-3/{len(TEXT)}",
                                                                            TEXT[:4])


def test_more_ranges_than_max_ranges_get_the_whole_file(site):
    answer = fetch(site("--max-ranges", "2"), "/text.bin", range="bytes=0-0,2-2,4-4")
    assert (answer.status, answer.body) == (200, TEXT)


def test_max_ranges_ranges_are_served(site):
    assert fetch(site("--max-ranges", "2"), "/text.bin", range="bytes=0-0,2-2").status == 206


def test_ranges_adding_up_to_more_than_the_file_get_the_whole_file(site):
    answer = fetch(site(), "/text.bin", range="bytes=0-,0-,0-")
    assert (answer.status, answer.body) == (200, TEXT)


def test_interrupted_download_resumes_byte_exact(site):
    server = site()
    with requests.get(server.url + f"/{BIG_NAME}", stream=True, timeout=TIMEOUT,
                      headers={"Accept-Encoding": "identity"}) as response:
        partial = response.raw.read(100_001)  # the connection drops here, as `curl -C -` would find it
    rest = fetch(server, f"/{BIG_NAME}", range=f"bytes={len(partial)}-")
    assert rest.status == 206
    assert rest.headers["Content-Range"] == f"bytes {len(partial)}-{len(BIG) - 1}/{len(BIG)}"
    assert hashlib.sha256(partial + rest.body).digest() == hashlib.sha256(BIG).digest()


def test_resuming_a_complete_download_is_416(site):
    assert fetch(site(), f"/{BIG_NAME}", range=f"bytes={len(BIG)}-").status == 416


# ---------------------------------------------------------------- a 6 GiB sparse file

SPARSE_MARKS = ((4 * GIB - 8, b"ACROSS-4GiB-EDGE"), (5 * GIB, b"five gibibytes in"),
                (SPARSE_SIZE - 9, b"THE-END!\n"))


@pytest.fixture
def sparse_server(site):
    """A server whose root holds a 6 GiB sparse file with known bytes across 4 GiB, at 5 GiB and at the end."""
    server = site()
    with open(os.path.join(server.root, "huge.bin"), "wb") as f:
        f.truncate(SPARSE_SIZE)
        for offset, data in SPARSE_MARKS:
            f.seek(offset)
            f.write(data)
    return server


def test_huge_file_reports_its_full_length(sparse_server):
    assert fetch(sparse_server, "/huge.bin", "HEAD").headers["Content-Length"] == str(SPARSE_SIZE)


def test_range_beyond_4_gib_is_sent_from_the_right_offset(sparse_server):
    offset, data = SPARSE_MARKS[1]
    answer = fetch(sparse_server, "/huge.bin", range=f"bytes={offset}-{offset + len(data) - 1}")
    assert (answer.status, answer.body) == (206, data)
    assert answer.headers["Content-Range"] == f"bytes {offset}-{offset + len(data) - 1}/{SPARSE_SIZE}"


def test_range_across_the_4_gib_boundary_is_exact(sparse_server):
    offset, data = SPARSE_MARKS[0]
    answer = fetch(sparse_server, "/huge.bin", range=f"bytes={offset - 4}-{offset + len(data) + 3}")
    assert answer.body == b"\0" * 4 + data + b"\0" * 4


def test_suffix_range_of_a_huge_file_is_its_end(sparse_server):
    answer = fetch(sparse_server, "/huge.bin", range="bytes=-9")
    assert (answer.status, answer.body) == (206, SPARSE_MARKS[2][1])


# ---------------------------------------------------------------- precompressed variants

ORIGINAL = b"body { color: red; }\n" * 50
GZIPPED = gzip.compress(ORIGINAL, mtime=0)
BROTLI = b"pretend brotli bytes"  # served as they are: the server never decodes a variant
PRECOMPRESSED = {"style.css": ORIGINAL, "style.css.gz": GZIPPED, "style.css.br": BROTLI}


def test_gzip_variant_is_sent_when_accepted(site):
    answer = fetch(site(files=PRECOMPRESSED), "/style.css", accept_encoding="gzip")
    assert (answer.status, answer.headers["Content-Encoding"], answer.body) == (200, "gzip", GZIPPED)
    assert gzip.decompress(answer.body) == ORIGINAL


def test_variant_keeps_the_original_content_type(site):
    answer = fetch(site(files=PRECOMPRESSED), "/style.css", accept_encoding="gzip")
    assert answer.headers["Content-Type"] == "text/css"


def test_variant_varies_on_accept_encoding(site):
    answer = fetch(site(files=PRECOMPRESSED), "/style.css", accept_encoding="gzip")
    assert answer.headers["Vary"] == "Accept-Encoding"


def test_original_beside_variants_varies_on_accept_encoding(site):
    answer = fetch(site(files=PRECOMPRESSED), "/style.css")
    assert (answer.body, answer.headers["Vary"]) == (ORIGINAL, "Accept-Encoding")
    assert "Content-Encoding" not in answer.headers


def test_br_is_preferred_when_both_are_accepted(site):
    answer = fetch(site(files=PRECOMPRESSED), "/style.css", accept_encoding="gzip, deflate, br")
    assert (answer.headers["Content-Encoding"], answer.body) == ("br", BROTLI)


def test_q_zero_refuses_br(site):
    answer = fetch(site(files=PRECOMPRESSED), "/style.css", accept_encoding="br;q=0, gzip")
    assert (answer.headers["Content-Encoding"], answer.body) == ("gzip", GZIPPED)


def test_q_zero_for_every_coding_gets_the_original(site):
    answer = fetch(site(files=PRECOMPRESSED), "/style.css", accept_encoding="*;q=0")
    assert answer.body == ORIGINAL and "Content-Encoding" not in answer.headers


def test_accept_encoding_without_a_variant_gets_the_original(site):
    answer = fetch(site(), "/text.bin", accept_encoding="gzip, br")
    assert answer.body == TEXT and "Content-Encoding" not in answer.headers and "Vary" not in answer.headers


def test_range_applies_to_the_variant_sent(site):
    answer = fetch(site(files=PRECOMPRESSED), "/style.css", accept_encoding="gzip", range="bytes=0-9")
    assert (answer.status, answer.body) == (206, GZIPPED[:10])
    assert answer.headers["Content-Range"] == f"bytes 0-9/{len(GZIPPED)}"


def test_variant_has_its_own_etag(site):
    server = site(files=PRECOMPRESSED)
    assert fetch(server, "/style.css", accept_encoding="gzip").headers["ETag"] != \
        fetch(server, "/style.css").headers["ETag"]


def test_revalidating_a_variant_with_its_etag_is_304(site):
    server = site(files=PRECOMPRESSED)
    etag = fetch(server, "/style.css", accept_encoding="gzip").headers["ETag"]
    assert fetch(server, "/style.css", accept_encoding="gzip", if_none_match=etag).status == 304


def test_variant_etag_does_not_validate_the_original(site):
    server = site(files=PRECOMPRESSED)
    etag = fetch(server, "/style.css", accept_encoding="gzip").headers["ETag"]
    assert fetch(server, "/style.css", if_none_match=etag).status == 200


def test_precompressed_off_sends_the_original(site):
    answer = fetch(site("--no-precompressed", files=PRECOMPRESSED), "/style.css", accept_encoding="gzip, br")
    assert answer.body == ORIGINAL and "Content-Encoding" not in answer.headers


# ---------------------------------------------------------------- Cache-Control

def test_no_cache_control_by_default(site):
    assert "Cache-Control" not in fetch(site(), "/text.bin").headers


def test_cache_max_age_sets_cache_control(site):
    assert fetch(site("--cache-max-age", "600"), "/text.bin").headers["Cache-Control"] == "max-age=600"


def test_cache_max_age_by_extension_overrides_the_default(site, tmp_path):
    config = tmp_path / "oserver.toml"
    config.write_text("cache_max_age = 60\ncache_max_age_by_ext = { css = 86400 }\n")
    server = site("-c", str(config), files={"a.css": b"a{}"})
    assert fetch(server, "/a.css").headers["Cache-Control"] == "max-age=86400"
    assert fetch(server, "/text.bin").headers["Cache-Control"] == "max-age=60"


def test_304_repeats_cache_control(site):
    server = site("--cache-max-age", "600")
    etag = fetch(server, "/text.bin").headers["ETag"]
    assert fetch(server, "/text.bin", if_none_match=etag).headers["Cache-Control"] == "max-age=600"


# ---------------------------------------------------------------- directory listing

LISTED = {"dir/sub/inner.txt": b"x", "dir/<b>&'q.txt": b"12345", "dir/a b%20c?.txt": b"abc", "dir/.hidden": b"h",
          "dir/.git/config": b"secret", "dir/z.txt": b"zz"}


def listing_links(page):
    return re.findall(r'href="([^"]*)"', page)


def test_directory_without_index_is_404_by_default(site):
    assert fetch(site(files=LISTED), "/dir/").status == 404


def test_autoindex_lists_a_directory_without_index(site):
    answer = fetch(site("--autoindex", files=LISTED), "/dir/")
    assert (answer.status, answer.headers["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert listing_links(answer.body.decode()) == ["../", "sub/", "%3Cb%3E%26%27q.txt", "a%20b%2520c%3F.txt",
                                                    "z.txt"]


def test_autoindex_escapes_names(site):
    page = fetch(site("--autoindex", files=LISTED), "/dir/").body.decode()
    assert "&lt;b&gt;&amp;&#x27;q.txt</a>" in page and "<b>" not in page


def test_autoindex_links_lead_to_the_files(site):
    server = site("--autoindex", files=LISTED)
    page = fetch(server, "/dir/").body.decode()
    bodies = [fetch(server, "/dir/" + link).body for link in listing_links(page) if link.endswith(".txt")]
    assert bodies == [b"12345", b"abc", b"zz"]


def test_autoindex_shows_file_sizes(site):
    page = fetch(site("--autoindex", files=LISTED), "/dir/").body.decode()
    assert re.search(r"z\.txt</a></td><td>\d{4}-\d\d-\d\d \d\d:\d\d</td><td>2</td>", page)


def test_autoindex_never_lists_dot_files(site):
    page = fetch(site("--autoindex", "--serve-dotfiles", files=LISTED), "/dir/").body.decode()
    assert ".hidden" not in page and ".git" not in page


def test_autoindex_still_serves_an_index_file(site):
    answer = fetch(site("--autoindex", files={"d/index.html": b"<p>index</p>"}), "/d/")
    assert answer.body == b"<p>index</p>"


# ---------------------------------------------------------------- charset

def test_charset_is_added_to_text_types(site):
    server = site("--charset", "utf-8", files={"page.html": b"<p>hi</p>"})
    assert fetch(server, "/page.html").headers["Content-Type"] == "text/html; charset=utf-8"


def test_charset_is_not_added_to_binary_types(site):
    assert fetch(site("--charset", "utf-8"), "/text.bin").headers["Content-Type"] == "application/octet-stream"
