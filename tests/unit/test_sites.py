"""Sites as pure decisions: which site a host name selects, and what a site's rules make of its
files' replies (locations, redirects, try_files, error pages, header fields). Over real files in a temporary
directory, no socket; the same rules over real sockets are in tests/integration/test_sites.py."""

import os
import textwrap

import pytest

from oserver.config import build_config
from oserver.http.parser import host_name, parse_request_head
from oserver.router import Router
from oserver.sites import NO_SITE, SiteTable

FILES = {
    "www/index.html": "www home\n", "www/404.html": "www 404\n", "www/a.txt": "0123456789",
    "www/assets/app.js": "js\n", "www/docs/index.html": "docs\n", "www/empty/.keep": "",
    "app/index.html": "app shell\n", "app/static/app.js": "app js\n", "app/guide/index.html": "guide\n",
    "sub/index.html": "sub\n",
}


@pytest.fixture
def sites(tmp_path):
    """sites(toml) -> the SiteTable of a config file holding `toml` beside the FILES."""
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)

    def table(text):
        path = tmp_path / "oserver.toml"
        path.write_text(textwrap.dedent(text))
        return SiteTable(build_config(str(path)))
    return table


def request(path, host="www.example.test", method="GET", version="HTTP/1.1", **fields):
    lines = [f"{method} {path} {version}"] + ([f"Host: {host}"] if host is not None else [])
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in fields.items()]
    return parse_request_head("\r\n".join(lines).encode("latin-1"))


def fields(reply):
    return [tuple(line.split(": ", 1)) for line in reply.fields.decode("latin-1").split("\r\n") if line]


def field(reply, name):
    values = [value for key, value in fields(reply) if key.lower() == name.lower()]
    assert len(values) <= 1, values
    return values[0] if values else None


def body(reply):
    if reply.data:
        return reply.data
    span = reply.parts[0]
    return os.pread(span.file.fileno(), span.count, span.offset)


TWO_SITES = """
    root = "www"
    [[site]]
    server_names = ["app.example.test", "*.app.example.test"]
    root = "app"
    [[site]]
    server_names = ["sub.app.example.test", "*.deep.app.example.test", "10.0.0.1", "[::1]"]
    root = "sub"
"""


# ---------------------------------------------------------------- the host a request names

@pytest.mark.parametrize("target, host, name", [
    ("/", "Example.TEST", "example.test"),
    ("/", "example.test:8080", "example.test"),
    ("/", "example.test.", "example.test"),
    ("/", "[::1]:8080", "[::1]"),
    ("/", "10.0.0.1:80", "10.0.0.1"),
    ("/", None, ""),
    ("http://Other.Test:81/x", "example.test", "other.test"),
], ids=["case", "port", "trailing-dot", "ipv6", "ipv4", "absent", "absolute-form-wins"])
def test_host_name_ignores_case_port_and_a_trailing_dot(target, host, name):
    assert host_name(target, host) == name


# ---------------------------------------------------------------- which site

@pytest.mark.parametrize("host, body_text", [
    ("app.example.test", "app shell\n"),
    ("APP.Example.Test:8443", "app shell\n"),
    ("x.app.example.test", "app shell\n"),
    ("a.b.app.example.test", "app shell\n"),
    ("sub.app.example.test", "sub\n"),
    ("x.deep.app.example.test", "sub\n"),
    ("10.0.0.1:8080", "sub\n"),
    ("[::1]:8080", "sub\n"),
    ("example.test", "www home\n"),
    ("app.example.test.evil", "www home\n"),
    ("xapp.example.test", "www home\n"),
], ids=["exact", "case-and-port", "wildcard", "wildcard-two-labels", "exact-beats-wildcard",
        "longest-wildcard", "ipv4", "ipv6", "unknown-default", "suffix-is-not-a-match", "label-boundary"])
def test_host_selects_the_site(sites, host, body_text):
    assert body(sites(TWO_SITES).respond(request("/", host))) == body_text.encode()


def test_a_wildcard_does_not_match_its_bare_name(sites):
    table = sites('root = "www"\n[[site]]\nserver_names = ["*.app.example.test"]\nroot = "app"\n')
    assert body(table.respond(request("/", "app.example.test"))) == b"www home\n"


def test_http10_without_host_gets_the_default_site(sites):
    assert body(sites(TWO_SITES).respond(request("/", None, version="HTTP/1.0"))) == b"www home\n"


def test_refuse_answers_421_and_closes_for_an_unknown_host(sites):
    reply = sites('default_site = "refuse"\n' + TWO_SITES).respond(request("/", "unknown.test"))
    assert (reply.status, reply.keep_alive) == (421, False)


def test_refuse_answers_421_without_host(sites):
    table = sites('default_site = "refuse"\n' + TWO_SITES)
    assert table.respond(request("/", None, version="HTTP/1.0")).status == 421


def test_site_names_for_the_access_log(sites):
    table = sites(TWO_SITES)
    assert [table.name(request("/", host)) for host in ("x.app.example.test", "other.test")] == \
        ["app.example.test", "default"]
    assert sites('default_site = "refuse"\n' + TWO_SITES).name(request("/", "other.test")) == NO_SITE


def calls_the_files_directly(table):
    """Does the table answer with its default site's StaticFiles.respond itself (no site lookup, no layer)?"""
    return table.default is not None and table.respond == table.default.static.respond


def test_one_plain_site_is_the_routers_fast_path(sites):
    table = sites('root = "www"\n')
    router = Router(build_config(overrides={"root": table.default.static.root}), table, None, None, ready=None)
    assert calls_the_files_directly(table) and router.site_respond == table.default.static.respond


@pytest.mark.parametrize("text", ['headers = {X-A = "1"}\n', 'error_pages = {404 = "/404.html"}\n',
                                  'try_files = ["$uri", "/index.html"]\n', 'default_site = "refuse"\n',
                                  '[[location]]\nprefix = "/a"\n', '[[site]]\nserver_names = ["a.test"]\n'],
                         ids=["headers", "error-pages", "try-files", "refuse", "location", "sites"])
def test_anything_more_leaves_the_fast_path(sites, text):
    assert not calls_the_files_directly(sites('root = "www"\n' + text))


# ---------------------------------------------------------------- header fields

HEADERS = """
    root = "www"
    cache_max_age = 60
    headers = {X-Frame-Options = "DENY", X-Site = "www"}
    [[location]]
    prefix = "/assets/"
    headers = {Cache-Control = "public, max-age=31536000, immutable", x-site = "assets"}
    [[location]]
    prefix = "/docs"
    headers = {X-Frame-Options = "", ETag = ""}
"""


@pytest.mark.parametrize("name, status, extra", [
    ("200", 200, {}),
    ("206", 206, {"range": "bytes=0-1"}),
    ("304", 304, {"if_none_match": "*"}),
    ("404", 404, {}),
    ("405", 405, {"method": "DELETE"}),
])
def test_site_headers_go_on_every_status(sites, name, status, extra):
    method = extra.pop("method", "GET")
    path = "/a.txt" if status != 404 else "/missing"
    reply = sites(HEADERS).respond(request(path, method=method, **extra))
    assert reply.status == status
    assert (field(reply, "X-Frame-Options"), field(reply, "X-Site")) == ("DENY", "www")


@pytest.mark.parametrize("status, extra", [(200, {}), (206, {"range": "bytes=0-1"}), (304, {"if_none_match": "*"})])
def test_location_headers_add_to_the_sites_and_replace_by_name(sites, status, extra):
    reply = sites(HEADERS).respond(request("/assets/app.js", **extra))
    assert reply.status == status
    assert field(reply, "X-Frame-Options") == "DENY"
    assert field(reply, "X-Site") == "assets"  # the site's X-Site gave way, whatever the case of its name


def test_location_headers_apply_to_its_404(sites):
    reply = sites(HEADERS).respond(request("/assets/missing.js"))
    assert (reply.status, field(reply, "X-Site")) == (404, "assets")


def test_a_configured_field_replaces_the_files_own(sites):
    reply = sites(HEADERS).respond(request("/assets/app.js"))
    assert field(reply, "Cache-Control") == "public, max-age=31536000, immutable"  # not also max-age=60


def test_an_empty_value_removes_a_field(sites):
    reply = sites(HEADERS).respond(request("/docs/"))
    assert reply.status == 200
    assert (field(reply, "X-Frame-Options"), field(reply, "ETag")) == (None, None)
    assert field(reply, "Last-Modified") is not None and field(reply, "X-Site") == "www"


def test_header_fields_leave_the_body_and_framing_alone(sites):
    plain = sites('root = "www"\n').respond(request("/a.txt"))
    reply = sites(HEADERS).respond(request("/a.txt"))
    assert (reply.data, field(reply, "Content-Length")) == (plain.data, "10")


# ---------------------------------------------------------------- error pages

ERROR_PAGES = """
    root = "www"
    error_pages = {404 = "/404.html", 405 = "/404.html", 416 = "/404.html"}
"""


def test_error_page_is_served_with_the_original_status(sites):
    reply = sites(ERROR_PAGES).respond(request("/missing"))
    assert (reply.status, reply.data, field(reply, "Content-Type"), field(reply, "Content-Length")) == \
        (404, b"www 404\n", "text/html", "8")


def test_error_page_keeps_the_errors_own_fields(sites):
    reply = sites(ERROR_PAGES).respond(request("/a.txt", method="DELETE"))
    assert (reply.status, reply.data, field(reply, "Allow")) == (405, b"www 404\n", "GET, HEAD")
    reply = sites(ERROR_PAGES).respond(request("/a.txt", range="bytes=50-60"))
    assert (reply.status, field(reply, "Content-Range")) == (416, "bytes */10")


def test_a_missing_error_page_leaves_the_built_in_one_without_a_loop(sites):
    table = sites('root = "www"\nerror_pages = {404 = "/also-missing.html"}\n')
    reply = table.respond(request("/missing"))
    assert reply.status == 404 and b"<h1>404 Not Found</h1>" in reply.data


def test_error_pages_leave_successful_replies_alone(sites):
    assert sites(ERROR_PAGES).respond(request("/a.txt")).data == b"0123456789"


# ---------------------------------------------------------------- try_files

SPA = """
    root = "app"
    try_files = ["$uri", "$uri/", "/index.html"]
    [[location]]
    prefix = "/static/"
    try_files = ["$uri", "=404"]
    [[location]]
    prefix = "/raw"
    try_files = []
"""


def test_a_deep_link_gets_the_fallback_with_200(sites):
    reply = sites(SPA).respond(request("/users/42/settings"))
    assert (reply.status, body(reply)) == (200, b"app shell\n")


def test_an_existing_file_is_served_itself(sites):
    assert body(sites(SPA).respond(request("/static/app.js"))) == b"app js\n"


def test_a_directory_with_an_index_gets_its_slash_then_its_index(sites):
    table = sites(SPA)
    redirect = table.respond(request("/guide?x=1"))
    assert (redirect.status, field(redirect, "Location")) == (301, "/guide/?x=1")
    assert body(table.respond(request("/guide/"))) == b"guide\n"


def test_equals_status_answers_that_status(sites):
    assert sites(SPA).respond(request("/static/missing.js")).status == 404


def test_location_can_turn_try_files_off(sites):
    assert sites(SPA).respond(request("/raw/missing")).status == 404


def test_the_fallback_answers_conditional_requests(sites):
    table = sites(SPA)
    etag = field(table.respond(request("/deep/link")), "ETag")
    assert table.respond(request("/other/link", if_none_match=etag)).status == 304


def test_try_files_refuses_other_methods(sites):
    reply = sites(SPA).respond(request("/users/1", method="POST"))
    assert (reply.status, field(reply, "Allow")) == (405, "GET, HEAD")


def test_the_fallback_may_be_missing(sites):
    table = sites('root = "www"\ntry_files = ["$uri", "/nowhere.html"]\n')
    assert table.respond(request("/x")).status == 404


# ---------------------------------------------------------------- locations and redirects

REDIRECTS = """
    root = "www"
    [[location]]
    prefix = "/old/"
    redirect = "https://example.test/new/"
    [[location]]
    prefix = "/old/keep"
    headers = {X-Kept = "1"}
    [[location]]
    prefix = "/q"
    redirect = "/search?lang=en"
    status = 302
    [[location]]
    prefix = "/f"
    redirect = "/guide#top"
    [[location]]
    prefix = "/t7"
    redirect = "/seven"
    status = 307
    [[location]]
    prefix = "/t8"
    redirect = "https://other.test"
    status = 308
"""


@pytest.mark.parametrize("path, status, location", [
    ("/old/a/b?x=1&y=2", 301, "https://example.test/new/a/b?x=1&y=2"),
    ("/old/", 301, "https://example.test/new/"),
    ("/old", 301, "https://example.test/new/"),
    ("/old/../old/c%20d/%C3%A9", 301, "https://example.test/new/c%20d/%C3%A9"),
    ("/q/terms?page=2", 302, "/search/terms?lang=en&page=2"),
    ("/q", 302, "/search?lang=en"),
    ("/f/x?y", 301, "/guide/x?y#top"),
    ("/t7/x", 307, "/seven/x"),
    ("/t8/y?z", 308, "https://other.test/y?z"),
], ids=["path-and-query", "prefix-itself", "prefix-without-slash", "normalised-and-encoded", "302-query-joined",
        "302-target-query", "fragment-last", "307", "308"])
def test_redirect_appends_the_rest_of_the_path_and_the_query(sites, path, status, location):
    reply = sites(REDIRECTS).respond(request(path))
    assert (reply.status, field(reply, "Location")) == (status, location)


def test_the_longest_prefix_wins(sites):
    reply = sites(REDIRECTS).respond(request("/old/keep/a.txt"))
    assert (reply.status, field(reply, "X-Kept")) == (404, "1")


def test_prefixes_match_whole_segments(sites):
    assert sites(REDIRECTS).respond(request("/older")).status == 404


def test_a_redirect_answers_every_method(sites):
    assert sites(REDIRECTS).respond(request("/old/x", method="POST")).status == 301


def test_locations_match_the_decoded_normalised_path(sites):
    assert sites(REDIRECTS).respond(request("/%6Fld/x")).status == 301
    assert sites(REDIRECTS).respond(request("/docs/../old/x")).status == 301
