"""Native handlers (handler(request) -> (status, headers, body)) that tests/integration/test_mounts.py mounts.

This directory is put on the server's --python-path; it is not a package. Each handler answers one thing the
tests check: what the request looked like, a chosen status line, a streamed or file body, a failure.
"""

import json
import os

STREAM_BLOCK = 65536  # bytes per block of a streamed body, unless ?size= says otherwise
STREAM_BLOCKS = 4
JSON = "application/json"


def query_int(request, name, default):
    """An integer query parameter (?name=N), or `default` when absent."""
    for pair in request.query.split("&"):
        key, _, value = pair.partition("=")
        if key == name:
            return int(value)
    return default


def echo(request):
    """Everything the handler received, as JSON; the request body is echoed as latin-1 text."""
    seen = {
        "method": request.method, "target": request.target, "path": request.path,
        "script_name": request.script_name, "path_info": request.path_info, "query": request.query,
        "version": request.version, "headers": request.headers, "client": list(request.client),
        "server": list(request.server), "body": request.body.read().decode("latin-1"), "pid": os.getpid(),
    }
    headers = {"Content-Type": JSON, "X-Handler": "echo", "X-Method": request.method}
    return 200, headers, json.dumps(seen).encode()


def status(request):
    """Answers with the status line the client asked for in X-Want-Status (e.g. "299 Odd")."""
    return request.headers["x-want-status"], [("Content-Type", "text/plain")], b"as you asked\n"


def stream_blocks(request):
    """Block i is `size` bytes of value i % 256; ?blocks=N&size=M."""
    size = query_int(request, "size", STREAM_BLOCK)
    for i in range(query_int(request, "blocks", STREAM_BLOCKS)):
        yield bytes([i % 256]) * size


def stream(request):
    """A generator body of unknown length: chunked under HTTP/1.1, close-delimited under HTTP/1.0."""
    return 200, {"Content-Type": "application/octet-stream"}, stream_blocks(request)


def source_file(request):
    """This module's own source as an open file (sent with sendfile), from byte ?offset= on."""
    f = open(__file__, "rb")
    f.seek(query_int(request, "offset", 0))
    return 200, {"Content-Type": "text/x-python"}, f


BAD_ANSWERS = {
    "/str-body": (200, {}, "a str is not bytes"),
    "/status": ("20 Short", {}, b""),
    "/header": (200, {"X-Bad": "line\r\nbreak"}, b""),
}


def bad(request):
    """An answer the server must refuse (500): chosen by path_info among BAD_ANSWERS."""
    return BAD_ANSWERS[request.path_info]


def boom(request):
    """Always raises: the server answers 500 and logs the traceback."""
    raise RuntimeError("boom-marker: the handler failed on purpose")
