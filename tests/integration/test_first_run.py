"""First run (issue 14): `make run` answers / with a landing page whose every link works, turns the status page
on, and prints each request's access log line to the terminal."""

import os
import signal
import time
import subprocess
from html.parser import HTMLParser

import pytest
import requests

from tests.conftest import REPO, START_TIMEOUT, STOP_TIMEOUT, Server

MISSING_ON_PURPOSE = "/httptest/no-such-file"  # the landing page's example of a 404
POLL = 0.02


class MakeRun(Server):
    """`make run` on a free port with a document root of its own; stopped with Ctrl-C, as in a terminal."""

    def command_line(self, command, workers, args):
        return ["make", "-s", "-C", REPO, "run", f"HOST={self.host}", f"PORT={self.port}", f"WORKERS={workers}",
                f"RUN_ROOT={self.root}"]

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass  # Server.stop kills what is left
        super().stop()


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        self.hrefs += [value for name, value in attrs if tag == "a" and name == "href"]


@pytest.fixture(scope="module")
def make_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("make-run")
    server = MakeRun(str(base / "www"), log_path=str(base / "terminal.log"))
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def test_slash_is_the_landing_page(make_run):
    response = requests.get(make_run.url + "/", timeout=START_TIMEOUT)
    assert (response.status_code, response.headers["Content-Type"]) == (200, "text/html")
    assert "<h1>OServer is running</h1>" in response.text


def test_every_link_on_the_landing_page_answers(make_run):
    links = Links()
    links.feed(requests.get(make_run.url + "/", timeout=START_TIMEOUT).text)
    statuses = {href: requests.get(make_run.url + href, timeout=START_TIMEOUT).status_code for href in links.hrefs}
    assert {"/server-status", "/healthz", "/README.md", "/httptest/dir2/"} <= statuses.keys()
    assert statuses == {href: 404 if href == MISSING_ON_PURPOSE else 200 for href in links.hrefs}


def test_the_landing_page_names_every_main_section_of_the_readme(make_run):
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        sections = [line[3:].strip() for line in f if line.startswith("## ")]
    page = requests.get(make_run.url + "/", timeout=START_TIMEOUT).text
    assert len(sections) > 10
    assert [section for section in sections if f"<b>{section}</b>" not in page] == []


def test_each_request_is_logged_to_the_terminal(make_run):
    requests.get(make_run.url + "/httptest/readme.txt?first-run", timeout=START_TIMEOUT)
    line = '"GET /httptest/readme.txt?first-run HTTP/1.1" 200 19 '
    deadline = time.monotonic() + START_TIMEOUT
    while line not in make_run.log_text() and time.monotonic() < deadline:
        time.sleep(POLL)
    assert line in make_run.log_text()
