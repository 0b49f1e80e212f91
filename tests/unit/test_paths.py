"""Pure path mapping in oserver/static.py: URL path -> segments under the root, and file name -> Content-Type."""

import os

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from oserver.files.static import DEFAULT_CONTENT_TYPE, content_type, url_path_to_segments
from oserver.http.parser import HttpError

ROOT = "/srv/www"
# Pieces an attacker combines: separators and dots, raw and percent-encoded, NUL, backslashes, odd escapes.
PATH_PIECES = ["/", "..", ".", "%2e", "%2E", "%2e%2e", "%2f", "%2F", "%5c", "\\", "%00", "%", "%%", "%zz", "%c0%ae",
               "%ff", "a", "b.txt", ".git", "~", "%252e", ";", "?", "#", " ", "%20", "é", "%C3%A9"]


def inside_root(path):
    return path == ROOT or path.startswith(ROOT + "/")


@pytest.mark.parametrize("raw, segments", [
    ("/", []),
    ("/a/b.txt", ["a", "b.txt"]),
    ("/a/b/", ["a", "b"]),
    ("//a///b", ["a", "b"]),
    ("/a/./b", ["a", "b"]),
    ("/a/../b", ["b"]),
    ("/a/b/../../c", ["c"]),
    ("/a/..", []),
    ("/space%20in%20name.txt", ["space in name.txt"]),
    ("/text..txt", ["text..txt"]),
    ("/%70age.html", ["page.html"]),
    ("/%D0%A0%D0%BE%D1%81%D1%81%D0%B8%D1%8F.html", ["Россия.html"]),
    ("/a%2fb", ["a", "b"]),
    ("/a/%2e%2e/b", ["b"]),
    ("/a/%2E/b", ["a", "b"]),
    ("/100%", ["100%"]),
    ("/%zz", ["%zz"]),
    ("/a+b", ["a+b"]),
    ("/a\\..\\b", ["a\\..\\b"]),
])
def test_url_path_maps_to_segments(raw, segments):
    assert url_path_to_segments(raw) == segments


@pytest.mark.parametrize("raw", ["/..", "/../etc/passwd", "/a/../../etc/passwd", "/%2e%2e/etc/passwd",
                                 "/%2E%2E%2Fetc%2Fpasswd", "/a%2f..%2f..%2fetc"])
def test_climbing_above_the_root_is_refused(raw):
    with pytest.raises(HttpError) as error:
        url_path_to_segments(raw)
    assert error.value.status == 400


@pytest.mark.parametrize("raw", ["/a%00.html", "/%00", "/a/b.txt%00/../c"])
def test_nul_byte_is_refused(raw):
    with pytest.raises(HttpError) as error:
        url_path_to_segments(raw)
    assert error.value.status == 400


@pytest.mark.parametrize("raw", ["/%ff", "/%c0%ae%c0%ae/etc/passwd", "/%e0%80%ae"])
def test_invalid_utf8_is_refused(raw):
    with pytest.raises(HttpError) as error:
        url_path_to_segments(raw)
    assert error.value.status == 400


@pytest.mark.parametrize("raw", ["/.env", "/.git/config", "/a/.git/", "/%2egit/HEAD", "/a/.hidden/../b"])
def test_dot_files_are_hidden(raw):
    assert url_path_to_segments(raw) is None


def test_dot_files_map_when_serving_them_is_enabled():
    assert url_path_to_segments("/.well-known/a.txt", serve_dotfiles=True) == [".well-known", "a.txt"]


@settings(max_examples=500)
@given(st.lists(st.sampled_from(PATH_PIECES), max_size=12).map("".join) | st.text())
@example("/../../etc/passwd")
@example("%2e%2e/%2e%2e/etc/passwd")
def test_mapped_path_never_leaves_the_root(raw):
    try:
        segments = url_path_to_segments(raw)
    except HttpError as error:
        assert error.status == 400
        return
    if segments is None:
        return
    for segment in segments:
        assert segment not in ("", ".", "..")
        assert "/" not in segment and "\0" not in segment
    joined = os.path.join(ROOT, *segments)  # what static.py opens
    assert joined == os.path.normpath(joined)
    assert inside_root(joined)


@settings(max_examples=300)
@given(st.lists(st.sampled_from(PATH_PIECES), max_size=12).map("".join) | st.text())
def test_hidden_names_never_map_to_segments(raw):
    try:
        segments = url_path_to_segments(raw)
    except HttpError:
        return
    assert segments is None or not any(segment.startswith(".") for segment in segments)


@pytest.mark.parametrize("name, expected", [
    ("index.html", "text/html"),
    ("page.htm", "text/html"),
    ("INDEX.HTML", "text/html"),
    ("splash.css", "text/css"),
    ("jquery-1.9.1.js", "application/javascript"),
    ("pic.jpg", "image/jpeg"),
    ("pic.JPEG", "image/jpeg"),
    ("pic_ext.png", "image/png"),
    ("anim.gif", "image/gif"),
    ("movie.swf", "application/x-shockwave-flash"),
    ("readme.txt", "text/plain"),
    ("text..txt", "text/plain"),
    ("data.json", "application/json"),
    ("logo.svg", "image/svg+xml"),
    ("doc.pdf", "application/pdf"),
    ("clip.mp4", "video/mp4"),
    ("/srv/www/dir.d/file.css", "text/css"),
    ("unknown.xyzzy", DEFAULT_CONTENT_TYPE),
    ("Makefile", DEFAULT_CONTENT_TYPE),
    ("archive.", DEFAULT_CONTENT_TYPE),
])
def test_content_type_comes_from_the_extension(name, expected):
    assert content_type(name) == expected


def test_html_content_type_has_no_parameter_by_default():
    assert content_type("wikipedia_russia.html") == "text/html"


@pytest.mark.parametrize("name, expected", [
    ("index.html", "text/html; charset=utf-8"),
    ("readme.txt", "text/plain; charset=utf-8"),
    ("app.js", "application/javascript; charset=utf-8"),
    ("data.json", "application/json; charset=utf-8"),
    ("pic.png", "image/png"),
    ("blob.bin", DEFAULT_CONTENT_TYPE),
])
def test_charset_is_added_to_text_types_only(name, expected):
    assert content_type(name, "utf-8") == expected


def test_raw_utf8_octets_in_the_target_map_like_their_percent_encoding():
    raw = "/caf\xc3\xa9.txt"  # the octets of "/café.txt" as the parser hands them over (latin-1 decoded)
    assert url_path_to_segments(raw) == url_path_to_segments("/caf%C3%A9.txt") == ["café.txt"]
