"""Relative paths (issue 14): in a config file they are taken from the file's directory, in flags (overrides)
from the current directory, so a config file works whatever directory the server starts from."""

import os

import pytest

from oserver.config import build_config
from tests.conftest import REPO

CONF = os.path.join(REPO, "conf")


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A directory holding www/ and conf/; the current directory is elsewhere."""
    (tmp_path / "www").mkdir()
    (tmp_path / "conf").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return tmp_path


def config_from(site, text, overrides=None):
    path = site / "conf" / "oserver.toml"
    path.write_text(text)
    return build_config(str(path), overrides)


def test_relative_root_in_a_file_is_taken_from_the_files_directory(site):
    assert config_from(site, 'root = "../www"\n').root == str(site / "www")


def test_absolute_root_in_a_file_is_kept(site):
    assert config_from(site, f'root = "{site / "www"}"\n').root == str(site / "www")


def test_relative_python_path_entries_are_taken_from_the_files_directory(site):
    config = config_from(site, f'root = "../www"\npython_path = [".", "lib", "{site}"]\n')
    assert config.python_path == (str(site / "conf"), str(site / "conf" / "lib"), str(site))


def test_relative_log_and_pid_files_are_taken_from_the_files_directory(site):
    config = config_from(site, 'root = "../www"\nerror_log = "error.log"\naccess_log = "../access.log"\n'
                               'pid_file = "oserver.pid"\n')
    assert (config.error_log, config.access_log, config.pid_file) == (
        str(site / "conf" / "error.log"), str(site / "access.log"), str(site / "conf" / "oserver.pid"))


@pytest.mark.parametrize("text", ['error_log = "-"\naccess_log = "-"\n', 'access_log = "off"\npid_file = ""\n'],
                         ids=["standard-streams", "off"])
def test_log_values_naming_no_file_are_kept(site, text):
    config = config_from(site, 'root = "../www"\n' + text)
    assert {config.error_log, config.access_log, config.pid_file} <= {"-", "off", ""}


def test_an_option_that_is_no_path_is_kept(site):
    assert config_from(site, 'root = "../www"\nindex = ["a/index.html"]\n').index == ("a/index.html",)


def test_relative_paths_in_flags_stay_relative_to_the_current_directory(site, monkeypatch):
    monkeypatch.chdir(site)
    config = config_from(site, 'root = "/nowhere"\n', {"root": "www", "python_path": ("lib",)})
    assert (config.root, config.python_path) == ("www", ("lib",))


def test_shipped_mounts_example_loads_from_any_directory(site):
    config = build_config(os.path.join(CONF, "examples", "mounts.toml"))
    assert (config.root, config.python_path) == (os.path.join(REPO, "httptest"), (os.path.join(CONF, "examples"),))


def test_a_sites_relative_root_is_taken_from_the_files_directory(site):
    (site / "docs").mkdir()
    config = config_from(site, 'root = "../www"\n[[site]]\nserver_names = ["a.test"]\nroot = "../docs"\n')
    assert config.site[0].config.root == str(site / "docs")


def test_relative_tls_files_are_taken_from_the_files_directory(site):
    config = config_from(site, 'root = "../www"\ntls_port = 8443\ntls_certificate = "tls/cert.pem"\n'
                               'tls_certificate_key = "/etc/key.pem"\n'
                               '[[tls_sni]]\nserver_names = ["a.test"]\ncertificate = "a.pem"\n'
                               'certificate_key = "../a.key"\n')
    assert (config.tls_certificate, config.tls_certificate_key) == (str(site / "conf" / "tls" / "cert.pem"),
                                                                   "/etc/key.pem")
    assert (config.tls_sni[0].certificate, config.tls_sni[0].certificate_key) == (str(site / "conf" / "a.pem"),
                                                                                   str(site / "a.key"))
