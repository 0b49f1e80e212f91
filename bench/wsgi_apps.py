"""The WSGI app every server runs in `make bench-apps`: /hello answers at once, /io sleeps 20 ms first (a stand-in
for a database call), anything else is a 404.

It dispatches on the whole path (SCRIPT_NAME + PATH_INFO), so it answers alike mounted at / (granian, gunicorn) or
at /hello and /io (OServer, whose root serves the static page beside it). Not part of OServer.
"""

import time

HELLO = b"Hello, World!"
IO_WAIT_S = 0.020
NOT_FOUND = b"not found\n"
HELLO_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))]
NOT_FOUND_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(NOT_FOUND)))]


def app(environ, start_response):
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    if path == "/io":
        time.sleep(IO_WAIT_S)
    elif path != "/hello":
        start_response("404 Not Found", NOT_FOUND_HEADERS)
        return [NOT_FOUND]
    start_response("200 OK", HELLO_HEADERS)
    return [HELLO]
