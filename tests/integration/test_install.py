"""Packaging (issue 14): the checkout installs with pip into a fresh virtualenv, and the `oserver` command and
`python -m oserver` it provides answer --version and --help and serve files.

The install is a user's `pip install <checkout>`: pip builds the package in isolation and takes the build
backend and setproctitle from the package index this machine's pip is configured with. The checkout is copied
first, so that the build leaves nothing in the working tree and runs from another directory.
"""

import os
import shutil
import subprocess
import sys

import pytest
import requests

from oserver import __version__
from tests.conftest import FIXTURES, REPO, START_TIMEOUT, Server, make_docroot

INSTALL_TIMEOUT = 180  # seconds for the venv and the pip install (the index is usually answered from cache)
NOT_SHIPPED = (".git", ".venv", ".run", "build", "dist", "*.egg-info", "__pycache__", "work")


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """The bin/ directory of a fresh virtualenv with OServer pip-installed from a copy of the checkout."""
    base = tmp_path_factory.mktemp("install")
    source = base / "oserver-checkout"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*NOT_SHIPPED))
    subprocess.run([sys.executable, "-m", "venv", str(base / "venv")], check=True, timeout=INSTALL_TIMEOUT)
    bin_dir = base / "venv" / "bin"
    pip = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", str(source)],
                         capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    assert pip.returncode == 0, pip.stderr
    return bin_dir


def run_installed(venv, *argv, cwd):
    return subprocess.run([str(venv / argv[0]), *argv[1:]], capture_output=True, text=True, cwd=cwd,
                          timeout=START_TIMEOUT)


def test_installed_package_is_imported_from_the_venv(venv, tmp_path):
    where = run_installed(venv, "python", "-c", "import oserver; print(oserver.__file__)", cwd=tmp_path)
    assert where.stdout.startswith(str(venv.parent))


def test_installed_command_prints_the_package_version(venv, tmp_path):
    assert run_installed(venv, "oserver", "--version", cwd=tmp_path).stdout == f"oserver {__version__}\n"


def test_python_m_oserver_prints_the_flags(venv, tmp_path):
    result = run_installed(venv, "python", "-m", "oserver", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m oserver ")
    assert "--root ROOT" in result.stdout


def test_installed_command_serves_a_file(venv, tmp_path):
    server = Server(make_docroot(tmp_path / "www"), command=[str(venv / "oserver")],
                    log_path=str(tmp_path / "server.log"))
    try:
        response = requests.get(server.wait_ready().url + "/httptest/readme.txt", timeout=START_TIMEOUT)
    finally:
        server.stop()
    with open(os.path.join(FIXTURES, "readme.txt"), "rb") as f:
        assert (response.status_code, response.content) == (200, f.read())
    assert server.proc.returncode == 0
