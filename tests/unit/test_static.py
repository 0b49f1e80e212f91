"""StaticFiles beyond path mapping: validators, negotiation of precompressed variants, the reply plans for
conditional and range requests, the lookup cache's view of sidecars, and the directory listing page.

Content types and URL path mapping are covered in test_paths.py.
"""

import os
import re

import pytest

from oserver.config import Config
from oserver.files.listing import DirectoryEntry, listing_page
from oserver.files.static import StaticFiles, preferred_codings
from oserver.http.output import FileSpan
from oserver.http.parser import parse_request_head

TEXT = b"0123456789abcdefghij"


def request(path, method="GET", **fields):
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in fields.items()]
    return parse_request_head("\r\n".join(lines).encode("latin-1"))


def field_lines(reply):
    return dict(line.split(": ", 1) for line in reply.fields.decode("latin-1").split("\r\n") if line)


@pytest.fixture
def root(tmp_path):
    (tmp_path / "a.txt").write_bytes(TEXT)
    return tmp_path


def static_files(root, **options):
    return StaticFiles(Config(root=str(root), **options))


# ---------------------------------------------------------------- Accept-Encoding (RFC 9110 12.5.3)

def test_br_is_preferred_on_equal_weight():
    assert preferred_codings("gzip, br") == ("br", "gzip")


def test_higher_weight_wins():
    assert preferred_codings("br;q=0.5, gzip") == ("gzip", "br")


def test_q_zero_refuses_a_coding():
    assert preferred_codings("gzip, br;q=0") == ("gzip",)


def test_star_allows_unnamed_codings():
    assert preferred_codings("*") == ("br", "gzip")


def test_star_does_not_override_q_zero():
    assert preferred_codings("*, br;q=0") == ("gzip",)


def test_unnamed_codings_are_not_acceptable():
    assert preferred_codings("identity, deflate") == ()


def test_x_gzip_is_gzip():
    assert preferred_codings("x-gzip") == ("gzip",)


def test_codings_are_case_insensitive():
    assert preferred_codings("GZip;Q=1") == ("gzip",)


def test_malformed_weight_refuses_the_coding():
    assert preferred_codings("gzip;q=high") == ()


# ---------------------------------------------------------------- replies

def test_file_reply_has_validators_and_accept_ranges(root):
    fields = field_lines(static_files(root).respond(request("/a.txt")))
    assert fields["ETag"].startswith('"') and fields["Last-Modified"].endswith(" GMT")
    assert fields["Accept-Ranges"] == "bytes"


def test_not_modified_reply_carries_validators_and_no_length(root):
    files = static_files(root)
    etag = field_lines(files.respond(request("/a.txt")))["ETag"]
    reply = files.respond(request("/a.txt", if_none_match=etag))
    fields = field_lines(reply)
    assert (reply.status, reply.data, reply.parts) == (304, b"", ())
    assert fields["ETag"] == etag and "Last-Modified" in fields and "Content-Length" not in fields


def test_single_range_of_a_large_file_is_a_file_span(root):
    reply = static_files(root, small_file_max=0).respond(request("/a.txt", range="bytes=5-9"))
    (part,) = reply.parts
    assert (reply.status, part.__class__, part.offset, part.count) == (206, FileSpan, 5, 5)


def test_multipart_of_a_large_file_sends_spans_between_part_heads(root):
    reply = static_files(root, small_file_max=0).respond(request("/a.txt", range="bytes=0-1,10-12"))
    spans = [(part.offset, part.count) for part in reply.parts if part.__class__ is FileSpan]
    assert spans == [(0, 2), (10, 3)]


def test_multipart_of_a_small_file_is_one_bytes_part(root):
    reply = static_files(root).respond(request("/a.txt", range="bytes=0-1,10-12"))
    assert reply.parts == () and int(field_lines(reply)["Content-Length"]) == len(reply.data)


def test_range_is_ignored_on_head(root):
    assert static_files(root).respond(request("/a.txt", "HEAD", range="bytes=0-1")).status == 200


def test_cache_control_by_extension_accepts_a_leading_dot_and_any_case(root):
    files = static_files(root, cache_max_age=60, cache_max_age_by_ext={".TXT": 3600})
    assert field_lines(files.respond(request("/a.txt")))["Cache-Control"] == "max-age=3600"


# ---------------------------------------------------------------- precompressed variants and the cache

def test_sidecar_added_later_is_noticed_on_revalidation(root):
    files = static_files(root, open_file_cache_valid=1e-9)
    assert "Content-Encoding" not in field_lines(files.respond(request("/a.txt", accept_encoding="gzip")))
    (root / "a.txt.gz").write_bytes(b"gz")
    assert field_lines(files.respond(request("/a.txt", accept_encoding="gzip")))["Content-Encoding"] == "gzip"


def test_cached_bytes_count_variants_and_return_to_zero_when_forgotten(root):
    (root / "a.txt.br").write_bytes(b"br!")
    files = static_files(root)
    files.respond(request("/a.txt"))
    assert files.cached_bytes == len(TEXT) + 3
    files.forget(os.path.join(files.root, "a.txt"))
    assert files.cached_bytes == 0


def test_every_spelling_of_a_path_shares_one_open_file(root):
    files = static_files(root)
    spellings = ["/a.txt", "/./a.txt", "//a.txt", "/%61.txt", "/x/../a.txt"]
    entries = {id(files.lookup(spelling)) for spelling in spellings}
    assert len(entries) == 1 and len(files.files) == 1


def test_sidecar_without_its_original_is_not_served_in_its_place(root):
    (root / "b.txt.gz").write_bytes(b"gz")
    assert static_files(root).respond(request("/b.txt", accept_encoding="gzip")).status == 404


def test_sidecars_are_ignored_when_precompressed_is_off(root):
    (root / "a.txt.gz").write_bytes(b"gz")
    fields = field_lines(static_files(root, precompressed=False).respond(request("/a.txt", accept_encoding="gzip")))
    assert "Content-Encoding" not in fields and "Vary" not in fields


# ---------------------------------------------------------------- directory listing page

def entry(name, is_dir=False, size=1, mtime=0):
    return DirectoryEntry(name, is_dir, size, mtime)


def test_listing_escapes_names_and_quotes_links():
    page = listing_page("/", [entry('<b>&"x.txt')]).decode()
    assert '<a href="%3Cb%3E%26%22x.txt">&lt;b&gt;&amp;&quot;x.txt</a>' in page


def test_listing_quotes_characters_that_would_end_a_path():
    page = listing_page("/", [entry("a?b#c d.txt")]).decode()
    assert 'href="a%3Fb%23c%20d.txt"' in page


def test_listing_puts_directories_first_then_names_in_order():
    page = listing_page("/", [entry("b.txt"), entry("z", is_dir=True), entry("a.txt"), entry("c", True)]).decode()
    assert re.findall(r'href="([^"]*)"', page) == ["c/", "z/", "a.txt", "b.txt"]


def test_listing_never_shows_dot_files():
    page = listing_page("/", [entry(".secret"), entry(".git", is_dir=True), entry("shown")]).decode()
    assert "secret" not in page and ".git" not in page and "shown" in page


def test_listing_leaves_out_names_that_are_not_utf8():
    page = listing_page("/", [entry(os.fsdecode(b"bad\xff.txt")), entry("good.txt")])
    assert b"bad" not in page and b"good.txt" in page


def test_listing_shows_sizes_and_utc_times():
    page = listing_page("/", [entry("f.bin", size=12345, mtime=784111777)]).decode()
    assert "<td>1994-11-06 08:49</td><td>12345</td>" in page


def test_listing_has_a_parent_link_below_the_root():
    assert b'href="../"' in listing_page("/sub/", [])


def test_listing_of_the_root_has_no_parent_link():
    assert b'href="../"' not in listing_page("/", [])


def test_listing_title_is_escaped():
    assert b"Index of /&lt;x&gt;/" in listing_page("/<x>/", [])
