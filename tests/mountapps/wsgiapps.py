"""PEP 3333 applications that tests/integration/test_mounts.py mounts, dispatched on PATH_INFO by `app`.

This directory is put on the server's --python-path; it is not a package. CLOSE_LOG_ENV names the file the
closing app appends its QUERY_STRING to when the server calls close() on its iterable.
"""

import json
import os

CLOSE_LOG_ENV = "MOUNTAPPS_CLOSE_LOG"
ENVIRON_KEYS = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH",
                "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "REMOTE_PORT",
                "wsgi.multiprocess", "wsgi.url_scheme")
TEXT = [("Content-Type", "text/plain")]


def environ_app(environ, start_response):
    """The CGI keys, every HTTP_* key and the body read from wsgi.input, as JSON."""
    seen = {key: environ[key] for key in ENVIRON_KEYS}
    seen["http"] = {key: value for key, value in environ.items() if key.startswith("HTTP_")}
    length = environ["CONTENT_LENGTH"]
    seen["body"] = environ["wsgi.input"].read(int(length) if length else 0).decode("latin-1")
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]


def writer_app(environ, start_response):
    """Part of the body through the write() callable start_response returns, the rest as the iterable."""
    write = start_response("200 OK", TEXT)
    write(b"written, ")
    return [b"then returned\n"]


def lazy_app(environ, start_response):
    """A generator: start_response runs only when the server asks for the first chunk."""
    start_response("202 Accepted", TEXT)
    yield b"lazy "
    yield b"generator\n"


class ClosingBody:
    """An iterable whose close() leaves a line (the request's query) in the close log."""

    def __init__(self, token):
        self.token = token

    def __iter__(self):
        yield b"closing body\n"

    def close(self):
        with open(os.environ[CLOSE_LOG_ENV], "a") as log:
            log.write(self.token + "\n")


def closing_app(environ, start_response):
    start_response("200 OK", TEXT)
    return ClosingBody(environ["QUERY_STRING"])


def file_app(environ, start_response):
    """This module's own source through wsgi.file_wrapper."""
    start_response("200 OK", [("Content-Type", "text/x-python")])
    return environ["wsgi.file_wrapper"](open(__file__, "rb"))


APPS = {"/environ": environ_app, "/write": writer_app, "/lazy": lazy_app, "/closing": closing_app,
        "/file": file_app}


def app(environ, start_response):
    """Dispatch on the first PATH_INFO segment; 404 for anything else."""
    first = "/" + environ["PATH_INFO"].split("/")[1]
    chosen = APPS.get(first)
    if chosen is None:
        start_response("404 Not Found", TEXT)
        return [b"no such app\n"]
    return chosen(environ, start_response)
