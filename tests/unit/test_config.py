"""Configuration: defaults < config file < flags, every error naming its key, and the shipped conf/oserver.toml
documenting every option with its true default."""

import dataclasses
import os
import re
import tomllib

import pytest

from oserver.cli import build_parser, overrides_from
from oserver.config import (FIELDS, MAX_WORKERS, MOZILLA_INTERMEDIATE_CIPHERS, Config, ConfigError, SniCertificate,
                            build_config, coerce)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED = os.path.join(REPO, "conf", "oserver.toml")
SHIPPED_NOT_DEFAULT = {"root"}  # the shipped file serves the demo files, not the current directory
OPTION_LINE = re.compile(r"(# )?[a-z_]+ = ")  # an option set, or shown commented out


@pytest.fixture
def write(tmp_path):
    """write(text) -> path of a config file holding `text`, with root set to an existing directory."""
    def write_config(text):
        path = tmp_path / "oserver.toml"
        path.write_text(f'root = "{tmp_path}"\n{text}')
        return str(path)
    return write_config


def error_of(*args, **kwargs):
    with pytest.raises(ConfigError) as raised:
        build_config(*args, **kwargs)
    return str(raised.value)


def default(name):
    f = FIELDS[name]
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


# ---------------------------------------------------------------- precedence

def test_defaults_apply_when_nothing_is_set(tmp_path):
    config = build_config(overrides={"root": str(tmp_path)})
    assert config == Config(root=str(tmp_path))
    assert (config.port, config.graceful_timeout, config.worker_timeout) == (8080, 30.0, 30.0)


def test_file_overrides_defaults(write):
    config = build_config(write("port = 9000\nindex = [\"home.html\"]\n"))
    assert (config.port, config.index) == (9000, ("home.html",))


def test_flags_override_the_file(write):
    config = build_config(write("port = 9000\nworkers = 3\n"), {"port": 9100})
    assert (config.port, config.workers) == (9100, 3)


def test_options_absent_from_file_and_flags_keep_their_defaults(write):
    config = build_config(write("port = 9000\n"), {"workers": 3})
    assert config.keepalive_timeout == default("keepalive_timeout")


# ---------------------------------------------------------------- values

def test_an_int_is_accepted_for_a_float_option(write):
    assert build_config(write("graceful_timeout = 5\n")).graceful_timeout == 5.0


def test_a_single_string_is_accepted_for_a_list_option(write):
    assert build_config(write('bind = "::1"\n')).bind == ("::1",)


def test_a_boolean_is_not_a_number():
    with pytest.raises(ConfigError, match="^port: "):
        coerce("port", True)


# ---------------------------------------------------------------- errors name the key

def test_unknown_key_is_named_with_the_file(write):
    path = write("max_clients = 10\n")
    message = error_of(path)
    assert "max_clients" in message and path in message


def test_value_of_the_wrong_type_is_named(write):
    assert error_of(write('port = "eighty"\n')).startswith("port: ")


@pytest.mark.parametrize("text, key", [
    ("workers = 0\n", "workers"),
    (f"workers = {MAX_WORKERS + 1}\n", "workers"),
    ("port = 70000\n", "port"),
    ("graceful_timeout = 0\n", "graceful_timeout"),
    ("worker_timeout = -1\n", "worker_timeout"),
    ('log_level = "loud"\n', "log_level"),
], ids=["no-workers", "too-many-workers", "port", "graceful-timeout", "worker-timeout", "log-level"])
def test_value_failing_its_check_is_named(write, text, key):
    assert error_of(write(text)).startswith(f"{key}: ")


def test_proxy_protocol_without_trusted_peers_is_refused(write):
    assert error_of(write("proxy_protocol = true\n")).startswith("proxy_protocol: ")


def test_the_proxy_protocol_real_ip_header_needs_proxy_protocol(write):
    text = 'real_ip_from = ["10.0.0.0/8"]\nreal_ip_header = "proxy_protocol"\n'
    assert error_of(write(text)).startswith("real_ip_header: ")


@pytest.mark.parametrize("text", ['real_ip_from = ["10.0.0.300"]\n', 'real_ip_header = "X Forwarded"\n'])
def test_a_bad_trusted_address_or_header_name_is_named(write, text):
    assert error_of(write(text)).startswith(text.split()[0] + ": ")


def test_bad_flag_value_is_named(tmp_path):
    assert error_of(overrides={"root": str(tmp_path), "backlog": 0}).startswith("backlog: ")


def test_missing_root_is_named(tmp_path):
    assert error_of(overrides={"root": str(tmp_path / "nowhere")}).startswith("root: ")


def test_unknown_user_is_named(write):
    assert error_of(write('user = "no-such-user-oserver"\n')).startswith("user: ")


def test_unknown_group_is_named(write):
    assert error_of(write('group = "no-such-group-oserver"\n')).startswith("group: ")


def test_invalid_toml_names_the_file_and_the_line(write):
    path = write("port = \n")
    message = error_of(path)
    assert path in message and "line 2" in message


def test_missing_config_file_is_named(tmp_path):
    path = str(tmp_path / "absent.toml")
    assert path in error_of(path)


# ---------------------------------------------------------------- the shipped conf/oserver.toml

def shipped_lines():
    with open(SHIPPED) as f:
        return f.read().splitlines()


def option_line(name, lines):
    """Index of the line setting `name`, or showing it commented out."""
    return next((i for i, line in enumerate(lines) if re.match(rf"(# )?{name} = ", line)), None)


def comment_above(lines, index):
    """The line above the group of option lines that holds lines[index] (user and group share one)."""
    while index > 0 and OPTION_LINE.match(lines[index - 1]):
        index -= 1
    return lines[index - 1] if index > 0 else ""


def test_shipped_config_loads(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # its root, the demo directory, is relative to the file: any directory will do
    assert build_config(SHIPPED).root == os.path.join(REPO, "httptest")


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_shipped_config_sets_or_shows_every_option(name):
    assert option_line(name, shipped_lines()) is not None


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_shipped_config_comments_every_option(name):
    lines = shipped_lines()
    assert comment_above(lines, option_line(name, lines)).startswith("# ")


def test_shipped_config_values_are_the_defaults():
    with open(SHIPPED, "rb") as f:
        values = tomllib.load(f)
    differing = {name for name, value in values.items() if coerce(name, value) != default(name)}
    assert differing == SHIPPED_NOT_DEFAULT


# ---------------------------------------------------------------- sites (issue 18)

def test_a_site_takes_the_top_level_options_it_does_not_set(write, tmp_path):
    (tmp_path / "docs").mkdir()
    config = build_config(write('charset = "utf-8"\ncache_max_age = 60\ntry_files = ["$uri", "/index.html"]\n'
                                '[[location]]\nprefix = "/a"\n'
                                '[[site]]\nserver_names = ["Docs.Test.", "*.docs.test"]\nroot = "docs"\n'
                                'cache_max_age = 5\n'))
    (site,) = config.site
    assert site.server_names == ("docs.test", "*.docs.test")
    assert (site.config.root, site.config.charset, site.config.cache_max_age) == (str(tmp_path / "docs"), "utf-8", 5)
    assert site.config.try_files == ("$uri", "/index.html")
    assert (site.config.location, site.config.site) == ((), ())  # the top level's locations are its own


def test_site_headers_are_merged_with_the_top_levels_by_name(write):
    config = build_config(write('headers = {X-Frame-Options = "DENY", X-A = "top"}\n'
                                '[[site]]\nserver_names = ["a.test"]\nheaders = {x-a = "site", X-B = ""}\n'))
    assert config.site[0].config.headers == {"X-Frame-Options": "DENY", "x-a": "site", "X-B": ""}


def test_locations_are_parsed_in_order_with_their_defaults(write):
    config = build_config(write('[[location]]\nprefix = "/old/"\nredirect = "/new/"\n'
                                '[[location]]\nprefix = "/static"\ntry_files = ["$uri", "=404"]\n'))
    first, second = config.location
    assert (first.prefix, first.redirect, first.status, first.try_files) == ("/old/", "/new/", 301, None)
    assert (second.redirect, second.try_files) == ("", ("$uri", "=404"))


def test_error_pages_are_keyed_by_status_number(write):
    assert build_config(write('error_pages = {404 = "/404.html"}\n')).error_pages == {404: "/404.html"}


# ---------------------------------------------------------------- TLS options (issue 15)

def test_tls_is_off_by_default_with_the_mozilla_intermediate_ciphers_ready(write):
    config = build_config(write(""))
    assert (config.tls_port, config.tls_protocols, config.tls_ciphers) == (0, ("TLSv1.2", "TLSv1.3"),
                                                                         MOZILLA_INTERMEDIATE_CIPHERS)
    assert config.listen_addresses == [("0.0.0.0", 8080)]


def test_the_tls_port_listens_on_every_bind_address_beside_the_plain_port(write):
    config = build_config(write('bind = ["127.0.0.1", "::1"]\ntls_port = 8443\ntls_certificate = "c.pem"\n'))
    assert config.listen_addresses == [("127.0.0.1", 8080), ("::1", 8080), ("127.0.0.1", 8443), ("::1", 8443)]


def test_sni_tables_are_read_with_one_or_several_names(write):
    config = build_config(write('[[tls_sni]]\nserver_names = "a.test"\ncertificate = "/a.pem"\n'
                                '[[tls_sni]]\nserver_names = ["b.test", "*.b.test"]\ncertificate = "/b.pem"\n'
                                'certificate_key = "/b.key"\n'))
    assert config.tls_sni == (SniCertificate(("a.test",), "/a.pem"),
                              SniCertificate(("b.test", "*.b.test"), "/b.pem", "/b.key"))


@pytest.mark.parametrize("text, message", [
    ("tls_port = 8080\ntls_certificate = 'c.pem'\n", "tls_port: 8080 is also the plain port"),
    ("tls_port = 8443\n", "tls_certificate: needed with tls_port"),
    ("redirect_to_https = true\n", "redirect_to_https: needs tls_port"),
    ("tls_port = 70000\n", "tls_port: 70000 is not in 0..65535"),
    ("tls_protocols = ['TLSv1.1']\n", "tls_protocols: 'TLSv1.1' is not one of TLSv1.2, TLSv1.3"),
    ("tls_protocols = []\n", "tls_protocols: at least one value is needed"),
    ("hsts_max_age = -2\n", "hsts_max_age: -2 is not >= -1"),
    ("tls_sni = 'x'\n", "tls_sni: expected an array of tables"),
    ("[[tls_sni]]\nserver_names = ['a.test']\n", "tls_sni: missing certificate"),
    ("[[tls_sni]]\nserver_names = ['a.test']\ncertificate = 'a'\ncolour = 'red'\n", "tls_sni: unknown key colour"),
    ("[[tls_sni]]\nserver_names = [1]\ncertificate = 'a'\n", "tls_sni: server_names: expected a string"),
    ("[[tls_sni]]\nserver_names = ['a b']\ncertificate = 'a'\n", "tls_sni: 'a b' is not a host name or *.domain"),
    ("[[tls_sni]]\nserver_names = ['a.*.test']\ncertificate = 'a'\n", "is not a host name or *.domain"),
])
def test_bad_tls_options_are_refused_naming_the_key(write, text, message):
    assert message in error_of(write(text))


def test_tls_flags_set_the_tls_options_and_sni_has_no_flag():
    args = build_parser().parse_args(["--tls-port", "8443", "--tls-certificate", "c.pem", "--tls-certificate-key",
                                      "k.pem", "--tls-protocols", "TLSv1.3", "--redirect-to-https",
                                      "--hsts-max-age", "600"])
    assert overrides_from(args) == {"tls_port": 8443, "tls_certificate": "c.pem", "tls_certificate_key": "k.pem",
                                    "tls_protocols": ["TLSv1.3"], "redirect_to_https": True, "hsts_max_age": 600}
    assert "--tls-sni" not in build_parser().format_help()
