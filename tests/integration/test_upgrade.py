"""Live upgrade of OServer itself (USR2, nginx's contract), with real processes and signals: the old master
starts the code on disk as a new master on the same sockets; WINCH + QUIT to the old one finishes the switch,
QUIT to the new one rolls it back; no request of a running load fails either way.

Each server runs from its own copy of the code (httpd.py and oserver/ in the test's directory), so a test can
change "the code on disk" under a running server.
"""

import os
import shutil
import signal
import sys

import pytest
import requests

from tests.conftest import HTTPD, REPO, Server, child_pids, free_port, make_docroot
from tests.integration.test_master import (EXIT_TIMEOUT, LAUNCHER, LOAD_PATHS, answers, is_alive, launched,
                                           refuses_connections, run_httpd, wait_for)
from tests.load import Load

LOAD_CLIENTS = 10
LOAD_STEP = 100  # requests that must flow between two steps of an upgrade
OLD_SUFFIX = ".oldbin"


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


@pytest.fixture
def upgradable(tmp_path):
    """A server (-w 2, a pidfile) started from a copy of the code in tmp_path/code, always stopped (its whole
    process group: a new master started by USR2 is in it too)."""
    code = tmp_path / "code"
    shutil.copytree(os.path.join(REPO, "oserver"), code / "oserver", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(HTTPD, code / "httpd.py")
    pid_file = str(tmp_path / "oserver.pid")
    server = Server(make_docroot(tmp_path / "www"), ["--pid", pid_file], log_path=str(tmp_path / "server.log"),
                    command=(sys.executable, str(code / "httpd.py")))
    server.code, server.pid_file = code, pid_file
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def new_master_serving(server):
    """The pid of the new master once it holds the pidfile and its workers serve."""
    new = read_pid(server.pid_file)
    if new in (None, server.pid) or f"] {new}: serving" not in server.log_text():
        return None
    return new


def server_header(server):
    return requests.get(server.url + "/", timeout=EXIT_TIMEOUT).headers["Server"]


def upgrade(server, load=None):
    """USR2 to the master; the new master's pid once it serves (the old one's pidfile is then .oldbin)."""
    server.signal(signal.SIGUSR2)
    new = wait_for(lambda: new_master_serving(server), "the new master's workers")
    assert read_pid(server.pid_file + OLD_SUFFIX) == server.pid
    if load is not None:
        load.flows(LOAD_STEP)
    return new


def test_usr2_runs_the_code_on_disk_as_a_new_master_beside_the_old_one(upgradable):
    version_file = upgradable.code / "oserver" / "__init__.py"
    version_file.write_text(version_file.read_text().replace('__version__ = "', '__version__ = "9.9.9+'))
    assert run_httpd("--pid", upgradable.pid_file, "-s", "upgrade").returncode == 0
    new = wait_for(lambda: new_master_serving(upgradable), "the new master's workers")
    with open(f"/proc/{new}/cmdline", "rb") as new_argv, open(f"/proc/{upgradable.pid}/cmdline", "rb") as old_argv:
        assert new_argv.read() == old_argv.read()
    assert new in child_pids(upgradable.pid) and len(child_pids(new)) == 2
    wait_for(lambda: "oserver/9.9.9+" in server_header(upgradable), "an answer from the new code")
    assert len(child_pids(upgradable.pid)) == 3  # the old workers serve on beside it until WINCH


def test_upgrade_under_load_loses_no_request(upgradable, capsys):
    with Load(upgradable.url, LOAD_PATHS, LOAD_CLIENTS) as load:
        load.flows(LOAD_STEP)
        new = upgrade(upgradable, load)
        upgradable.signal(signal.SIGWINCH)
        wait_for(lambda: child_pids(upgradable.pid) == [new], "the old workers to leave")
        load.flows(LOAD_STEP)
        upgradable.signal(signal.SIGQUIT)
        assert upgradable.proc.wait(EXIT_TIMEOUT) == 0
        load.flows(LOAD_STEP)
    with capsys.disabled():
        print(f"\nlive upgrade under load: {load.summary()}")
    assert load.errors == [] and (load.failed, load.non_2xx) == (0, 0)
    assert read_pid(upgradable.pid_file) == new and is_alive(new)
    assert not os.path.exists(upgradable.pid_file + OLD_SUFFIX)


def test_quit_to_the_new_master_rolls_back_under_load(upgradable, capsys):
    with Load(upgradable.url, LOAD_PATHS, LOAD_CLIENTS) as load:
        new = upgrade(upgradable, load)
        upgradable.signal(signal.SIGWINCH)
        wait_for(lambda: child_pids(upgradable.pid) == [new], "the old workers to leave")
        upgradable.signal(signal.SIGHUP)  # nginx's rollback: old workers first, then the new master goes
        wait_for(lambda: len(child_pids(upgradable.pid)) == 3, "the old master's workers again")
        load.flows(LOAD_STEP)
        os.kill(new, signal.SIGQUIT)
        wait_for(lambda: read_pid(upgradable.pid_file) == upgradable.pid, "the old master's pidfile back")
        load.flows(LOAD_STEP)
    with capsys.disabled():
        print(f"\nrollback under load: {load.summary()}")
    assert load.errors == [] and (load.failed, load.non_2xx) == (0, 0)
    assert not is_alive(new) and not os.path.exists(upgradable.pid_file + OLD_SUFFIX)


def test_when_the_new_master_goes_after_winch_the_old_workers_start_again(upgradable):
    new = upgrade(upgradable)
    upgradable.signal(signal.SIGWINCH)
    wait_for(lambda: child_pids(upgradable.pid) == [new], "the old workers to leave")
    os.kill(new, signal.SIGQUIT)
    wait_for(lambda: len(child_pids(upgradable.pid)) == 2, "the old master's workers again")
    assert answers(upgradable) and read_pid(upgradable.pid_file) == upgradable.pid


def test_a_new_master_that_cannot_start_leaves_the_old_one_serving(upgradable):
    (upgradable.code / "oserver" / "cli.py").write_text("raise SystemExit('broken on purpose')\n")
    upgradable.signal(signal.SIGUSR2)
    wait_for(lambda: "exited (exit code 1); master" in upgradable.log_text(), "the failed upgrade")
    assert read_pid(upgradable.pid_file) == upgradable.pid
    assert not os.path.exists(upgradable.pid_file + OLD_SUFFIX)
    assert answers(upgradable) and len(child_pids(upgradable.pid)) == 2


def test_an_upgrade_keeps_serving_the_sockets_systemd_passed(tmp_path, docroot):
    inherited, configured = free_port(), free_port()
    pid_file = str(tmp_path / "oserver.pid")
    argv = [sys.executable, "-c", LAUNCHER, str(inherited), HTTPD, "-r", docroot, "-b", "127.0.0.1", "-p",
            str(configured), "-w", "2", "--pid", pid_file]
    with launched(argv, inherited, tmp_path / "server.log") as server:
        server.pid_file = pid_file
        new = upgrade(server)
        server.signal(signal.SIGWINCH)
        wait_for(lambda: child_pids(server.pid) == [new], "the old workers to leave")
        server.signal(signal.SIGQUIT)
        assert server.proc.wait(EXIT_TIMEOUT) == 0
        assert answers(server)
        server.port = configured
        assert refuses_connections(server)  # the new master did not bind the configured address either
