"""Config error messages (issue 14): each names its key (or the file) and says what is allowed."""

import pytest

from oserver.cli import build_parser, overrides_from
from oserver.config import MAX_WORKERS, ConfigError, build_config


@pytest.fixture
def error_for(tmp_path):
    """error_for(text) -> the message of the ConfigError that a config file holding `text` raises."""
    def error(text):
        path = tmp_path / "oserver.toml"
        path.write_text(f'root = "{tmp_path}"\n{text}')
        with pytest.raises(ConfigError) as raised:
            build_config(str(path))
        return str(raised.value)
    return error


BAD_VALUES = [  # (config file text, the error message)
    ("port = 70000\n", "port: 70000 is not in 1..65535"),
    ("port = 0\n", "port: 0 is not in 1..65535"),
    ("workers = 0\n", f"workers: 0 is not in 1..{MAX_WORKERS}"),
    ("backlog = 0\n", "backlog: 0 is not > 0"),
    ("graceful_timeout = 0\n", "graceful_timeout: 0.0 is not > 0"),
    ("cache_max_age = -2\n", "cache_max_age: -2 is not >= -1"),
    ("small_file_max = -1\n", "small_file_max: -1 is not >= 0"),
    ('log_level = "loud"\n', "log_level: 'loud' is not one of debug, info, warning, error"),
    ('status_allow = ["127.0.0.1", "intranet"]\n', "status_allow: 'intranet' is not an IP address or network"),
    ("cache_max_age_by_ext = {css = -1}\n", "cache_max_age_by_ext: css: -1 is not an integer >= 0"),
    ('port = "eighty"\n', "port: expected int, got 'eighty'"),
]


@pytest.mark.parametrize("text, message", BAD_VALUES, ids=[message for _, message in BAD_VALUES])
def test_a_bad_value_is_named_with_what_is_allowed(error_for, text, message):
    assert error_for(text) == message


def test_an_unreadable_config_file_is_named(tmp_path):
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as raised:
        build_config(str(path))
    assert str(raised.value) == f"config file {path}: cannot read it: No such file or directory"


def test_cache_max_age_by_ext_has_a_repeatable_flag():
    args = build_parser().parse_args(["--cache-max-age-by-ext", "css=86400", "--cache-max-age-by-ext", ".JS=60"])
    assert overrides_from(args)["cache_max_age_by_ext"] == {"css": 86400, ".JS": 60}


def test_a_max_age_flag_that_is_no_number_is_refused(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--cache-max-age-by-ext", "css=a day"])
    assert capsys.readouterr().err == ("oserver: error: argument --cache-max-age-by-ext: expected EXT=SECONDS, "
                                       "got 'css=a day' (see --help)\n")


# ---------------------------------------------------------------- sites (issue 18): errors name the key inside

SITE = '[[site]]\nserver_names = ["a.test"]\n'
BAD_SITES = [  # (config file text after root, the error message)
    (SITE + 'rot = "x"\n', "site[0].rot: unknown option here (allowed: server_names, location, root, index, "
     "autoindex, serve_dotfiles, charset, precompressed, cache_max_age, cache_max_age_by_ext, headers, "
     "error_pages, try_files)"),
    (SITE + SITE.replace("a.test", "b.test") + 'root = "/no/such/dir"\n',
     "site[1].root: '/no/such/dir' is not a directory"),
    (SITE + "cache_max_age = -5\n", "site[0].cache_max_age: -5 is not >= -1"),
    (SITE + SITE.replace("a.test", "b.test") + '[[site.location]]\nprefix = "/a"\n[[site.location]]\nprefix = "/b"\n'
     'redirect = "not a url"\n',
     "site[1].location[1].redirect: 'not a url' is not a path or an absolute URL in visible ASCII "
     "(percent-encode the rest)"),
    (SITE + '[[site.location]]\nprefix = "/b"\nredirect = "/c"\nstatus = 303\n',
     "site[0].location[0].status: 303 is not one of 301, 302, 307, 308"),
    (SITE + '[[site.location]]\nprefix = "/b"\nstatus = 302\n',
     "site[0].location[0].status: only a redirect has a status"),
    (SITE + '[[site.location]]\nheaders = {X-A = "1"}\n', "site[0].location[0].prefix: a location needs one"),
    (SITE + '[[site.location]]\nprefix = "/a/"\n[[site.location]]\nprefix = "/a"\n',
     "site[0].location[1].prefix: '/a' is already site[0].location[0]'s"),
    (SITE + '[[site.location]]\nprefix = "a"\n',
     "site[0].location[0].prefix: 'a' must be a plain URL path prefix starting with /"),
    (SITE + '[[site.location]]\nprefix = "/a"\nredirct = "/b"\n',
     "site[0].location[0].redirct: unknown option here (allowed: prefix, headers, redirect, status, try_files)"),
    ('[[site]]\nroot = "."\n', "site[0].server_names: a site needs a list of host names, got None"),
    ('[[site]]\nserver_names = ["a.test:8080"]\n', "site[0].server_names: 'a.test:8080' is not a host name, "
     "*.name or IP address (the Host's port is ignored: name none)"),
    (SITE + SITE.replace("a.test", "A.Test"), "site[1].server_names: 'a.test' is already site[0]'s"),
    (SITE + 'headers = {Content-Length = "5"}\n', "site[0].headers: Content-Length is the server's own field"),
    (SITE + 'headers = {"Bad Name" = "5"}\n', "site[0].headers: 'Bad Name' is not a header field name"),
    (SITE + 'headers = {X-A = "line\\r\\nX-B: 1"}\n',
     "site[0].headers: X-A: 'line\\r\\nX-B: 1' is not a header field value"),
    (SITE + 'headers = {X-A = "1", x-a = "2"}\n', "site[0].headers: x-a is set twice"),
    (SITE + 'error_pages = {200 = "/ok.html"}\n', "site[0].error_pages: '200' is not an error status (400-599)"),
    (SITE + 'error_pages = {404 = "404.html"}\n', "site[0].error_pages: 404: '404.html' is not a URL path starting "
     "with /"),
    (SITE + 'try_files = ["/index.html"]\n', "site[0].try_files: needs what to try, then the fallback "
     "(e.g. [\"$uri\", \"/index.html\"])"),
    (SITE + 'try_files = ["=404", "/index.html"]\n', "site[0].try_files: '=404' must be a URL path starting with / "
     "or $uri (the only variable)"),
    (SITE + 'try_files = ["$uri", "=999"]\n', "site[0].try_files: '=999' is not =STATUS with an error status "
     "(e.g. =404)"),
    (SITE + 'try_files = ["$request_uri", "/index.html"]\n', "site[0].try_files: '$request_uri' must be a URL path "
     "starting with / or $uri (the only variable)"),
    ('[[location]]\nprefix = "/a"\nredirect = "/b"\nstatus = 300\n',
     "location[0].status: 300 is not one of 301, 302, 307, 308"),
    ('default_site = "first"\n', "default_site: 'first' is not one of serve, refuse"),
    ('site = {server_names = ["a.test"]}\n', "site: expected an array of tables ([[site]]), got "
     "{'server_names': ['a.test']}"),
]


@pytest.mark.parametrize("text, message", BAD_SITES, ids=[message.split(":")[0] + str(i)
                                                          for i, (_, message) in enumerate(BAD_SITES)])
def test_a_bad_site_value_names_its_key_inside_the_site(error_for, text, message):
    assert error_for(text) == message


def test_headers_and_error_pages_have_repeatable_flags():
    args = build_parser().parse_args(["--headers", "X-Frame-Options=DENY", "--headers", "X-A=", "--error-pages",
                                      "404=/404.html", "--try-files", "$uri", "--try-files", "/index.html"])
    overrides = overrides_from(args)
    assert (overrides["headers"], overrides["error_pages"], overrides["try_files"]) == \
        ({"X-Frame-Options": "DENY", "X-A": ""}, {"404": "/404.html"}, ["$uri", "/index.html"])


def test_sites_locations_and_sni_certificates_have_no_flag_and_help_says_so():
    parser = build_parser()
    options = parser._option_string_actions
    assert not {"--site", "--location", "--tls-sni"} & options.keys()
    assert "([[location]], [[site]], [[tls_sni]]) are set in the config file only" in " ".join(parser.epilog.split())
