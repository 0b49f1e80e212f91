"""The PEP 3333 adapter: runs a WSGI application as a handler.

Builds the environ from a HandlerRequest, implements start_response (exc_info, write()) and wsgi.file_wrapper
(a wrapped regular file is sent with sendfile), and hands the handler API back (status, headers, body).
The body is pulled as the client takes it; its close() is always called. No sockets here.
"""

import logging

from oserver import __version__
from oserver.apps.handlers import close_if_closable, regular_file
from oserver.memo import Memo

WSGI_VERSION = (1, 0)
FILE_BLOCK_SIZE = 65536
SERVER_SOFTWARE = f"oserver/{__version__}"
ENVIRON_KEYS_CACHED = 1024


class ErrorStream:
    """wsgi.errors: what the application writes goes to the error log, a line at a time."""

    def __init__(self):
        self.log = logging.getLogger("oserver.wsgi")
        self.pending = ""

    def write(self, text):
        lines = (self.pending + text).split("\n")
        self.pending = lines.pop()
        for line in lines:
            self.log.error("%s", line)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        if self.pending:
            self.log.error("%s", self.pending)
            self.pending = ""


class FileWrapper:
    """wsgi.file_wrapper: iterates a file-like object in blocks; a regular file is sent with sendfile instead."""

    def __init__(self, filelike, block_size=FILE_BLOCK_SIZE):
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self):
        return iter(lambda: self.filelike.read(self.block_size), b"")

    def close(self):
        close_if_closable(self.filelike)


class WsgiBody:
    """The application's iterable, with what it wrote through write() first; close() reaches the iterable."""

    def __init__(self, written, first, chunks, iterable):
        self.written = written
        self.first = first
        self.chunks = chunks
        self.iterable = iterable

    def __iter__(self):
        return self

    def __next__(self):
        if self.written:
            return self.written.pop(0)
        if self.first is not None:
            first, self.first = self.first, None
            return first
        return next(self.chunks)

    def close(self):
        close_if_closable(self.iterable)


class StartResponse:
    """start_response for one request: remembers the status and headers, collects write() calls."""

    def __init__(self):
        self.status = None
        self.headers = None
        self.written = []
        self.headers_sent = False

    def __call__(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.headers_sent:  # PEP 3333: too late to change the response, re-raise
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response called a second time without exc_info")
        if not isinstance(status, str) or not isinstance(headers, list):
            raise TypeError("start_response needs a status string and a list of (name, value) tuples")
        self.status = status
        self.headers = headers
        return self.written.append

    def answer(self, body):
        """(status, headers, body) for the handler; the headers count as sent from now on (PEP 3333)."""
        self.headers_sent = True
        return self.status, self.headers, body

    def whole(self, body):
        """answer() with a whole body (a list or tuple: sent with a Content-Length), after what write() took."""
        return self.answer([*self.written, *body] if self.written else body)


class WsgiApp:
    """A WSGI application as a handler: handler(request) -> (status, headers, body)."""

    def __init__(self, app, multithread=False):
        self.app = app
        self.multithread = multithread  # it runs on a worker's thread pool (threads > 1)
        self.errors = ErrorStream()

    def __call__(self, request):
        start_response = StartResponse()
        iterable = self.app(self.environ(request), start_response)
        if isinstance(iterable, (list, tuple)) and start_response.status is not None:  # a whole body at once
            return start_response.whole(iterable)
        try:
            if isinstance(iterable, FileWrapper) and regular_file(iterable.filelike) is not None \
                    and start_response.status is not None:
                return start_response.answer(iterable.filelike)
            chunks = iter(iterable)
            first = first_chunk(chunks)  # a generator app may call start_response only now (PEP 3333)
        except BaseException:
            close_if_closable(iterable)
            raise
        if start_response.status is None:
            raise RuntimeError("the WSGI application did not call start_response")
        if isinstance(iterable, (list, tuple)):  # a list whose iteration called start_response
            return start_response.whole(iterable)
        return start_response.answer(WsgiBody(start_response.written, first, chunks, iterable))

    def environ(self, request):
        """The PEP 3333 environ: CGI variables, HTTP_* for each header, and the wsgi.* keys."""
        headers = request.headers
        server_name, server_port = request.server if isinstance(request.server, tuple) else (request.server, 0)
        client = request.client if isinstance(request.client, tuple) else ("", 0)
        body = request.body.getbuffer().nbytes
        environ = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": native(request.script_name),
            "PATH_INFO": native(request.path_info),
            "QUERY_STRING": request.query,
            "CONTENT_TYPE": headers.get("content-type", ""),
            "CONTENT_LENGTH": str(body) if body or "content-length" in headers else "",
            "SERVER_NAME": str(server_name),
            "SERVER_PORT": str(server_port),
            "SERVER_PROTOCOL": request.version,
            "SERVER_SOFTWARE": SERVER_SOFTWARE,
            "REMOTE_ADDR": client[0],
            "REMOTE_PORT": str(client[1]),
            "REQUEST_URI": request.target,
            "RAW_URI": request.target,
            "wsgi.version": WSGI_VERSION,
            "wsgi.url_scheme": request.scheme,
            "wsgi.input": request.body,
            "wsgi.input_terminated": True,
            "wsgi.errors": self.errors,
            "wsgi.multithread": self.multithread,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
        }
        keys = ENVIRON_KEYS
        for name, value in headers.items():
            key = keys[name]
            if key:
                environ[key] = value
        return environ


def environ_key(name):
    """HTTP_* for a request header; "" for Content-Type and Content-Length, which have CGI names, and for a name
    with "_", which would pass for its "-" twin (nginx and gunicorn drop them)."""
    if "_" in name or name in ("content-type", "content-length"):
        return ""
    return "HTTP_" + name.upper().replace("-", "_")


# A request header's name -> environ_key(name), shared by the pool threads (a dict's get and set are atomic);
# names are the client's choice, so it is emptied when full.
ENVIRON_KEYS = Memo(environ_key, ENVIRON_KEYS_CACHED)


def first_chunk(chunks):
    """The first non-empty chunk of an application's iterable, or None when it has none."""
    for chunk in chunks:
        if chunk:
            return chunk
    return None


def native(text):
    """PEP 3333 "native string": the URL's UTF-8 bytes, each as one latin-1 character (ASCII stays as it is)."""
    return text if text.isascii() else text.encode("utf-8", "surrogateescape").decode("latin-1")
