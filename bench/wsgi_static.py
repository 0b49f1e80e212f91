"""A minimal static-file WSGI app for the gunicorn comparison: GET/HEAD of files under $BENCH_DOCROOT.

What a user would write in a few lines: the path is jailed to the root, a directory serves index.html,
the body goes out through wsgi.file_wrapper (sendfile under gunicorn). Not part of OServer.
"""

import mimetypes
import os
from urllib.parse import unquote

ROOT = os.path.realpath(os.environ.get("BENCH_DOCROOT", "."))
INDEX = "index.html"


def app(environ, start_response):
    if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
        return reply(start_response, "405 Method Not Allowed", b"method not allowed\n")
    path = file_for(environ.get("PATH_INFO", "/"))
    if path is None:
        return reply(start_response, "404 Not Found", b"not found\n")
    size = os.path.getsize(path)
    content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(size))])
    if environ["REQUEST_METHOD"] == "HEAD":
        return [b""]
    return environ["wsgi.file_wrapper"](open(path, "rb"))


def file_for(url_path):
    """The regular file a URL path names inside ROOT, or None."""
    path = os.path.realpath(os.path.join(ROOT, unquote(url_path).lstrip("/")))
    if path != ROOT and not path.startswith(ROOT + os.sep):
        return None
    if os.path.isdir(path):
        path = os.path.join(path, INDEX)
    return path if os.path.isfile(path) else None


def reply(start_response, status, body):
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
