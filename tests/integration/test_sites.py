"""Sites over real sockets: Host routing (exact, wildcard, port, case, absent, refused), the status page, health
path and mounts answering before any site, custom error pages, try_files for a single-page app, location and site
header fields on every status, redirects, a reload that adds a site, `-t` naming a bad key inside a site, $host
and $site in the access log, and the shipped example conf/examples/sites.toml doing what the README shows.

Tests that leave their server as it was share one module-scoped server; the others start their own.
"""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import HTTPD, REPO, START_TIMEOUT, Server
from tests.integration.test_core import RawConnection
from tests.integration.test_master import all_workers, wait_for, workers_replaced
from tests.integration.test_mounts import MOUNTAPPS, ready_until_teardown

EXAMPLE = os.path.join(REPO, "conf", "examples")
FILES = {
    "www/index.html": "www home\n", "www/404.html": "www's own 404 page\n", "www/a.txt": "0123456789",
    "www/assets/app.css": "body {}\n", "www/50x.html": "www's own 50x page\n",
    "app/index.html": "app shell\n", "app/static/app.js": "app js\n", "app/guide/index.html": "guide\n",
    "new/index.html": "new site\n",
}
SITES = """
    cache_max_age = 60
    error_pages = {404 = "/404.html", 500 = "/50x.html"}
    headers = {X-Frame-Options = "DENY", X-Site = "www"}
    access_log = "access.log"
    access_log_format = "$host $site $status $request_uri"

    [[location]]
    prefix = "/assets/"
    headers = {CACHE-CONTROL = "public, max-age=31536000, immutable", x-site = "www assets"}  # any case replaces

    [[location]]
    prefix = "/broken/"
    try_files = ["$uri", "=500"]

    [[location]]
    prefix = "/old/"
    redirect = "https://www.example.test/new/"

    [[location]]
    prefix = "/found"
    redirect = "/a.txt"
    status = 302

    [[location]]
    prefix = "/temporary"
    redirect = "/elsewhere/?from=old"
    status = 307

    [[location]]
    prefix = "/permanent"
    redirect = "https://other.example.test"
    status = 308

    [[site]]
    server_names = ["app.example.test", "*.app.example.test"]
    root = "app"
    try_files = ["$uri", "$uri/", "/index.html"]
    error_pages = {404 = "/no-such-page.html"}
    headers = {X-Site = "app"}

    [[site.location]]
    prefix = "/static/"
    try_files = ["$uri", "=404"]

    [[site]]
    server_names = ["new.app.example.test"]
    root = "new"
"""


def write_files(base):
    for name, text in FILES.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_text(text)


def write_config(base, text):
    path = base / "sites.toml"
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    """One server (-w 2) with the sites of SITES: the default one (www/), the app (app/) and new/."""
    base = tmp_path_factory.mktemp("sites")
    write_files(base)
    server = Server(str(base / "www"), ("-c", write_config(base, SITES)), log_path=str(base / "server.log"))
    server.base = base
    yield from ready_until_teardown(server)


@pytest.fixture
def site_server(tmp_path):
    """site_server(toml) -> a ready server of its own (-w 2) on the FILES, with a config file holding `toml` that
    the test may rewrite (`server.write_config(toml)`); stopped at teardown."""
    write_files(tmp_path)
    servers = []

    def start(text, ready_path="/"):
        server = Server(str(tmp_path / "www"), ("-c", write_config(tmp_path, text)),
                        log_path=str(tmp_path / "server.log"))
        server.write_config = lambda text: write_config(tmp_path, text)
        servers.append(server)
        return server.wait_ready(ready_path)
    yield start
    for server in servers:
        server.stop()


def get(server, path, host="www.example.test", method="GET", version="HTTP/1.1", headers=()):
    """One request on a fresh connection, with exactly this Host (None: no Host field)."""
    conn = RawConnection(server)
    try:
        return conn.get(path, version, method, ([f"Host: {host}"] if host is not None else []) + list(headers))
    finally:
        conn.close()


# ---------------------------------------------------------------- Host routing

@pytest.mark.parametrize("host", ["app.example.test", "x.app.example.test", "app.example.test:8080",
                                  "APP.Example.TEST"], ids=["exact", "wildcard", "port-suffixed", "upper-case"])
def test_the_host_chooses_the_site(sites, host):
    assert get(sites, "/", host).body == b"app shell\n"


def test_an_exact_name_beats_a_wildcard(sites):
    assert get(sites, "/", "New.App.Example.Test:8080").body == b"new site\n"


def test_an_unknown_host_gets_the_default_site(sites):
    assert get(sites, "/", "unknown.example.test").body == b"www home\n"


def test_http10_without_host_gets_the_default_site(sites):
    assert get(sites, "/", None, version="HTTP/1.0").body == b"www home\n"


def test_an_absolute_form_target_names_the_site_before_host(sites):
    assert get(sites, "http://app.example.test/", "www.example.test").body == b"app shell\n"


def test_refuse_answers_421_and_closes_for_an_unknown_host_or_none(site_server):
    server = site_server('default_site = "refuse"\n[[site]]\nserver_names = ["app.example.test"]\nroot = "app"\n',
                         ready_path="/healthz")  # the health probe answers whatever the host
    for version, headers in [("HTTP/1.1", ["Host: unknown.example.test"]), ("HTTP/1.0", [])]:
        conn = RawConnection(server)
        try:
            assert conn.get("/", version, headers=headers).status == 421
            assert conn.closed_by_server()
        finally:
            conn.close()
    assert get(server, "/", "app.example.test").body == b"app shell\n"


SERVER_WIDE = """
    default_site = "refuse"
    status_path = "/server-status"
    python_path = [{mountapps!r}]
    headers = {{X-Site = "www"}}

    [mount]
    "/api" = "handlers:echo"

    [[site]]
    server_names = ["app.example.test"]
    root = "app"

    [[site.location]]
    prefix = "/"
    redirect = "https://elsewhere.example.test/"
"""


@pytest.mark.parametrize("host", ["unknown.example.test", "app.example.test"])
def test_status_page_health_and_mounts_stay_server_wide(site_server, host):
    """They answer before any site is chosen: for a host `refuse` turns away, and for a site whose location
    redirects every path; and they carry none of a site's header fields."""
    server = site_server(SERVER_WIDE.format(mountapps=MOUNTAPPS), ready_path="/healthz")
    site = get(server, "/page", host)
    assert (site.status, site.header("x-site")) == ((421, None) if host.startswith("unknown") else (301, "www"))
    for path, body in [("/healthz", b"ok"), ("/server-status", b'"workers"'), ("/api/x?y=1", b'"path_info": "/x"')]:
        response = get(server, path, host)
        assert (response.status, response.header("x-site")) == (200, None), path
        assert body in response.body, path


# ---------------------------------------------------------------- error pages

def test_a_custom_404_page_is_served_with_status_404(sites):
    response = get(sites, "/missing")
    assert (response.status, response.body, response.header("content-type")) == \
        (404, b"www's own 404 page\n", "text/html")


def test_a_missing_error_page_falls_back_to_the_built_in_one(sites):
    response = get(sites, "/static/missing.js", "app.example.test")
    assert response.status == 404 and b"<h1>404 Not Found</h1>" in response.body


def test_a_500_gets_the_sites_own_page_with_status_500(sites):
    response = get(sites, "/broken/x")
    assert (response.status, response.body, response.header("x-frame-options")) == \
        (500, b"www's own 50x page\n", "DENY")


def test_the_connection_serves_on_after_an_error_page(sites):
    conn = RawConnection(sites)
    try:
        assert conn.get("/missing", headers=["Host: www.example.test"]).status == 404
        assert conn.get("/a.txt", headers=["Host: www.example.test"]).body == b"0123456789"
    finally:
        conn.close()


# ---------------------------------------------------------------- try_files (a single-page app)

def test_a_deep_link_gets_index_html_with_200(sites):
    response = get(sites, "/users/42/settings?tab=1", "app.example.test")
    assert (response.status, response.body) == (200, b"app shell\n")


def test_an_existing_asset_is_served_itself(sites):
    assert get(sites, "/static/app.js", "app.example.test").body == b"app js\n"


def test_equals_404_answers_404_for_a_missing_asset(sites):
    assert get(sites, "/static/nope.js", "app.example.test").status == 404


def test_a_directory_gets_its_slash_then_its_index(sites):
    redirect = get(sites, "/guide", "app.example.test")
    assert (redirect.status, redirect.header("location")) == (301, "/guide/")
    assert get(sites, "/guide/", "app.example.test").body == b"guide\n"


# ---------------------------------------------------------------- header fields on every status

def etag_of(server, path):
    return get(server, path).header("etag")


@pytest.mark.parametrize("status", [200, 206, 304, 404])
def test_location_headers_beside_site_headers(sites, status):
    path = "/assets/missing.css" if status == 404 else "/assets/app.css"
    extra = {206: ["Range: bytes=0-3"], 304: [f"If-None-Match: {etag_of(sites, '/assets/app.css')}"]}.get(status, [])
    response = get(sites, path, headers=extra)
    assert response.status == status
    assert response.header("x-frame-options") == "DENY"  # the site's
    # the location names them in other cases: each is sent once (header() checks), the location's value in place
    # of the site's X-Site and of the file's own Cache-Control (cache_max_age's)
    assert response.header("x-site") == "www assets"
    assert response.header("cache-control") == "public, max-age=31536000, immutable"


@pytest.mark.parametrize("status", [200, 304, 404])
def test_site_headers_outside_any_location(sites, status):
    path = "/missing" if status == 404 else "/a.txt"
    extra = [f"If-None-Match: {etag_of(sites, '/a.txt')}"] if status == 304 else []
    response = get(sites, path, headers=extra)
    assert (response.status, response.header("x-frame-options"), response.header("x-site")) == \
        (status, "DENY", "www")
    assert response.header("cache-control") == (None if status == 404 else "max-age=60")  # the file's own


def test_another_sites_headers_merge_with_the_top_levels(sites):
    response = get(sites, "/static/app.js", "app.example.test")
    assert (response.header("x-frame-options"), response.header("x-site")) == ("DENY", "app")


def test_framing_fields_stay_the_servers(sites):
    response = get(sites, "/assets/app.css", method="HEAD")
    assert [response.header(name) for name in ("content-length", "connection")] == ["8", "keep-alive"]


# ---------------------------------------------------------------- redirects

@pytest.mark.parametrize("path, status, location", [
    ("/old/2024/post?ref=feed&x=1", 301, "https://www.example.test/new/2024/post?ref=feed&x=1"),
    ("/old/", 301, "https://www.example.test/new/"),
    ("/found/a?b=c", 302, "/a.txt/a?b=c"),
    ("/temporary/x?q=1", 307, "/elsewhere/x?from=old&q=1"),
    ("/permanent/y/z?q", 308, "https://other.example.test/y/z?q"),
], ids=["301-path-and-query", "301-prefix", "302", "307", "308"])
def test_redirect_appends_path_and_query_with_its_status(sites, path, status, location):
    response = get(sites, path)
    assert (response.status, response.header("location"), response.header("x-frame-options")) == \
        (status, location, "DENY")


# ---------------------------------------------------------------- the access log

def test_access_log_names_the_host_and_the_site(sites):
    get(sites, "/?logged=app", "X.App.Example.Test:8080")
    get(sites, "/?logged=www", None, version="HTTP/1.0")
    log = sites.base / "access.log"

    def logged():
        lines = [line for line in log.read_text().splitlines() if "logged=" in line] if log.exists() else []
        return lines if len(lines) == 2 else None
    lines = wait_for(logged, "the two lines in the access log")
    assert sorted(lines) == ["- default 200 /?logged=www", "x.app.example.test app.example.test 200 /?logged=app"]


# ---------------------------------------------------------------- reload and -t

def test_a_reload_adds_a_site(site_server):
    server = site_server('headers = {X-Site = "www"}\n')
    assert get(server, "/", "new.example.test").body == b"www home\n"
    old = all_workers(server)
    server.write_config('headers = {X-Site = "www"}\n[[site]]\nserver_names = ["new.example.test"]\nroot = "new"\n')
    server.signal(signal.SIGHUP)
    wait_for(lambda: workers_replaced(server, old), "a new generation")
    response = get(server, "/", "new.example.test")
    assert (response.body, response.header("x-site")) == (b"new site\n", "www")
    assert get(server, "/", "www.example.test").body == b"www home\n"


def test_a_reload_with_a_bad_site_keeps_the_old_generation(site_server):
    server = site_server('[[site]]\nserver_names = ["app.example.test"]\nroot = "app"\n')
    workers = all_workers(server)
    server.write_config('[[site]]\nserver_names = ["app.example.test"]\nroot = "nowhere"\n')
    server.signal(signal.SIGHUP)
    wait_for(lambda: "reload failed" in server.log_text(), "the failed reload in the log")
    assert "site[0].root" in server.log_text()
    assert server.worker_pids() == workers
    assert get(server, "/", "app.example.test").body == b"app shell\n"


def check(*args, cwd):
    return subprocess.run([sys.executable, HTTPD, *args, "-t"], capture_output=True, text=True, cwd=cwd,
                          timeout=START_TIMEOUT)


@pytest.mark.parametrize("text, error", [
    ('rooot = "new"\n', "site[1].rooot: unknown option here (allowed: server_names, location, root, index, autoindex, "
                        "serve_dotfiles, charset, precompressed, cache_max_age, cache_max_age_by_ext, headers, "
                        "error_pages, try_files)"),
    ('[[site.location]]\nprefix = "/old/"\nredirect = "https://b.test/new/"\nstatus = 303\n',
     "site[1].location[0].status: 303 is not one of 301, 302, 307, 308"),
    ('headers = {Transfer-Encoding = "chunked"}\n', "site[1].headers: Transfer-Encoding is the server's own field"),
    ('[[site.location]]\nprefix = "/a/"\nheaders = {content-length = "5"}\n',
     "site[1].location[0].headers: content-length is the server's own field"),
    ('[[site.location]]\nprefix = "/a/"\nheaders = {Connection = "close"}\n',
     "site[1].location[0].headers: Connection is the server's own field"),
], ids=["unknown-key", "redirect-status", "transfer-encoding", "content-length", "connection"])
def test_check_names_a_bad_key_inside_a_site(tmp_path, text, error):
    write_files(tmp_path)
    two_sites = '[[site]]\nserver_names = ["a.test"]\n[[site]]\nserver_names = ["b.test"]\n'
    config = write_config(tmp_path, two_sites + text)
    result = check("-c", config, cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", f"oserver: error: {error}\n")


def test_check_lists_the_sites_it_resolved(tmp_path):
    config = os.path.join(EXAMPLE, "sites.toml")
    result = check("-c", config, cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        f"oserver: configuration {config} is OK; root {EXAMPLE}/sites/www",
        f"oserver: site[0] app.example.test *.app.example.test: root {EXAMPLE}/sites/app",
    ]


# ---------------------------------------------------------------- the shipped example (README "Sites")

@pytest.fixture(scope="module")
def example():
    yield from ready_until_teardown(Server(os.path.join(EXAMPLE, "sites", "www"),
                                           ("-c", os.path.join(EXAMPLE, "sites.toml"))))


def test_example_www_has_its_own_404_page(example):
    response = get(example, "/missing")
    assert (response.status, response.header("x-frame-options")) == (404, "DENY")
    assert b"www.example.test has no such page" in response.body


def test_example_assets_are_cached_for_a_year(example):
    response = get(example, "/assets/site.css", method="HEAD")
    assert (response.status, response.header("cache-control"), response.header("x-content-type-options")) == \
        (200, "public, max-age=31536000, immutable", "nosniff")


def test_example_moved_section_redirects_with_path_and_query(example):
    response = get(example, "/blog/2024/hello?ref=feed")
    assert (response.status, response.header("location")) == (301, "https://blog.example.test/2024/hello?ref=feed")


def test_example_app_serves_its_shell_for_deep_links_and_404_for_missing_scripts(example):
    shell = get(example, "/users/42", "app.example.test")
    assert (shell.status, shell.header("content-security-policy")) == (200, "default-src 'self'")
    assert b"single-page app" in shell.body
    assert get(example, "/static/missing.js", "app.example.test").status == 404
