"""`httpd.py -t` (issue 14): the shipped config files pass from any directory, the check prints the document
root it resolved, and every error is one line starting with the same prefix."""

import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import HTTPD, REPO, START_TIMEOUT

DEMO_ROOT = os.path.join(REPO, "httptest")
ERROR = "oserver: error: "


def run(*args, cwd):
    return subprocess.run([sys.executable, HTTPD, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=START_TIMEOUT)


def check(*args, cwd):
    return run(*args, "-t", cwd=cwd)


@pytest.mark.parametrize("config", ["oserver.toml", "examples/mounts.toml"])
def test_shipped_config_passes_from_another_directory(tmp_path, config):
    path = os.path.join(REPO, "conf", config)
    result = check("-c", path, cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"oserver: configuration {path} is OK; root {DEMO_ROOT}\n"


def test_check_prints_a_relative_root_flag_resolved_from_the_current_directory(tmp_path):
    (tmp_path / "www").mkdir()
    result = check("-r", "www", cwd=tmp_path)
    assert result.stdout == f"oserver: configuration (defaults and flags) is OK; root {tmp_path / 'www'}\n"


@pytest.mark.parametrize("args, problem", [
    (["-p", "70000"], "port: 70000 is not in 1..65535"),
    (["-c", "/no/such/oserver.toml"], "config file /no/such/oserver.toml: cannot read it: No such file or directory"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag (see --help)"),
], ids=["bad-value", "missing-config", "unknown-flag"])
def test_every_error_is_one_line_with_the_common_prefix(tmp_path, args, problem):
    result = check(*args, cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr == ERROR + problem + "\n"


def test_a_port_in_use_is_one_line_naming_the_address(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run("-b", "127.0.0.1", "-p", str(port), "-w", "1", "-r", str(tmp_path), cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr == f"{ERROR}cannot listen on 127.0.0.1:{port}: Address already in use\n"
