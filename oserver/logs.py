"""Logs: the error log (Python logging, worker pid on every line) and the buffered access log.

Owns log formats, escaping of client-supplied text, buffering and reopening files on USR1.
"""

import logging
import os
import re
import sys
import time

ACCESS_FLUSH_BYTES = 65536
UNSAFE = re.compile(r'[\x00-\x1f"\\\x7f-\U0010ffff]')
FIELD = re.compile(r"\$([a-z_0-9]+)")
ERROR_FORMAT = "%(asctime)s [%(levelname)s] %(process)d: %(message)s"


def escape(text):
    """Client-supplied text made safe for one log line: quotes, backslashes and non-printables as \\xHH."""
    return UNSAFE.sub(lambda m: "\\x%02X" % ord(m[0]) if ord(m[0]) < 256 else m[0].encode("unicode_escape")
                      .decode(), text)


def header(exchange, name):
    request = exchange.request
    return escape(request.headers.get(name, "-")) if request is not None else "-"


def request_line(exchange):
    request = exchange.request
    return escape(request.line.decode("latin-1")) if request is not None else "-"


ACCESS_FIELDS = {
    "remote_addr": lambda conn, ex, n, now: conn.address[0] if isinstance(conn.address, tuple) else "unix",
    "remote_port": lambda conn, ex, n, now: str(conn.address[1]) if isinstance(conn.address, tuple) else "-",
    "time_local": lambda conn, ex, n, now: time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(now)),
    "time_iso8601": lambda conn, ex, n, now: time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)),
    "request": lambda conn, ex, n, now: request_line(ex),
    "request_method": lambda conn, ex, n, now: ex.request.method if ex.request else "-",
    "request_uri": lambda conn, ex, n, now: escape(ex.request.target) if ex.request else "-",
    "status": lambda conn, ex, n, now: str(ex.status),
    "body_bytes_sent": lambda conn, ex, n, now: str(n),
    "http_referer": lambda conn, ex, n, now: header(ex, "referer"),
    "http_user_agent": lambda conn, ex, n, now: header(ex, "user-agent"),
    "request_time": lambda conn, ex, n, now: "%.3f" % (time.monotonic() - ex.started),
    "pid": lambda conn, ex, n, now: str(os.getpid()),
}


def compile_access_format(fmt):
    """A list of literal strings and field functions for an access log format; unknown fields are errors."""
    parts = []
    position = 0
    for m in FIELD.finditer(fmt):
        if m[1] not in ACCESS_FIELDS:
            raise ValueError(f"access_log_format: unknown field ${m[1]}")
        parts.append(fmt[position:m.start()])
        parts.append(ACCESS_FIELDS[m[1]])
        position = m.end()
    parts.append(fmt[position:])
    return parts


class AccessLog:
    """Buffered access log lines, written at ACCESS_FLUSH_BYTES, on flush() (every worker tick) and at exit."""

    def __init__(self, path, fmt):
        self.path = path
        self.parts = compile_access_format(fmt)
        self.enabled = path != "off"
        self.fd = None
        self.buffer = []
        self.buffered = 0
        self.reopen()

    def access(self, conn, exchange, body_bytes, aborted):
        if not self.enabled:
            return
        now = time.time()
        line = "".join(part if part.__class__ is str else part(conn, exchange, body_bytes, now)
                       for part in self.parts) + "\n"
        self.buffer.append(line)
        self.buffered += len(line)
        if self.buffered >= ACCESS_FLUSH_BYTES:
            self.flush()

    def flush(self):
        if not self.buffer:
            return
        data = "".join(self.buffer).encode("utf-8", "backslashreplace")
        self.buffer.clear()
        self.buffered = 0
        try:
            os.write(self.fd, data)
        except OSError as e:
            logging.getLogger("oserver").error("cannot write access log %s: %s", self.path, e.strerror)

    def reopen(self):
        if not self.enabled:
            return
        if self.fd is not None:
            self.flush()
        if self.path == "-":
            self.fd = sys.stdout.fileno()
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if self.fd is not None:
            os.close(self.fd)
        self.fd = fd


def setup_error_log(path, level):
    """Point the `oserver` logger at stderr or a file, at the given level name."""
    logger = logging.getLogger("oserver")
    logger.setLevel(level.upper())
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    handler = logging.StreamHandler(sys.stderr) if path == "-" else logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(ERROR_FORMAT))
    logger.addHandler(handler)
    logger.propagate = False
    return logger


def reopen_error_log():
    for handler in logging.getLogger("oserver").handlers:
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                handler.close()
                handler.stream = handler._open()
            finally:
                handler.release()
