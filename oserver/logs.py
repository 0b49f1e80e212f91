"""Logs: the error log (Python logging, worker pid on every line) and the buffered access log.

Owns the access log format (compiled once into one function), escaping of client-supplied text (no log
injection), buffering, and reopening files on USR1.
"""

import logging
import os
import re
import sys
import time

ACCESS_FLUSH_LINES = 256  # buffered access log lines that force a write (the worker tick flushes the rest)
REJECTED_LINE_MAX = 8192  # a rejected request's first line longer than this is logged as "-"
# Everything but printable ASCII, and the quote and backslash that delimit fields: written as \xHH (nginx).
UNSAFE = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')
FIELD = re.compile(r"\$([a-z_0-9]+)")
HEADER_FIELD_PREFIX = "http_"  # $http_user_agent: the User-Agent request header, as in nginx
NUMBER_TEXTS_MAX = 4096
REQUEST_CHUNKS_MAX = 1024  # requests whose log text is kept (parsed heads are reused: see http/protocol.py)
CACHED_HEAD_MAX = 2048  # about the head size above which http/protocol.py parses every time: no reuse to await
MILLISECONDS = ["0.%03d" % ms for ms in range(1000)]
ERROR_FORMAT = "%(asctime)s [%(levelname)s] %(process)d: %(message)s"
TIME_LOCAL = "%d/%b/%Y:%H:%M:%S %z"
TIME_ISO8601 = "%Y-%m-%dT%H:%M:%S%z"


def escape_char(match):
    code = ord(match[0])
    if code < 256:  # client text is decoded as latin-1: one character is one received byte
        return "\\x%02X" % code
    return "".join("\\x%02X" % byte for byte in match[0].encode("utf-8"))


def escape(text):
    """Client-supplied text made safe for one log line: quotes, backslashes and non-printables as \\xHH.
    Bytes are read as latin-1 (one character per byte)."""
    if text.__class__ is bytes:
        text = text.decode("latin-1")
    return UNSAFE.sub(escape_char, text)


def rejected_request_line(received):
    """The escaped first line of a request that was refused before it parsed, or "-" if none was read."""
    received = (received or b"").lstrip(b"\r\n")
    end = received.find(b"\n", 0, REJECTED_LINE_MAX + 1)
    if end < 0:
        return "-"
    return escape(received[:end].rstrip(b"\r"))


def host_text(address):
    """The host of a socket address, "unix" for a unix socket's."""
    return address[0] if address.__class__ is tuple else "unix"


def seconds_text(seconds):
    """Seconds with millisecond resolution, truncated as nginx does ("0.004")."""
    ms = int(seconds * 1000)
    return MILLISECONDS[ms] if ms < 1000 else "%d.%03d" % divmod(ms, 1000)


class NumberTexts(dict):
    """str(number) for numbers seen before (statuses, body sizes recur): a dict lookup, no conversion."""

    def __missing__(self, number):
        if len(self) >= NUMBER_TEXTS_MAX:
            self.clear()
        text = self[number] = str(number)
        return text


class LogClock:
    """Wall-clock strings for log lines, formatted at most once a second. Checked against the worker's loop
    time (monotonic), so a line costs no clock call: `expires` is when the wall-clock second changes."""

    __slots__ = ("expires", "local", "iso8601")

    def __init__(self):
        self.expires = 0.0
        self.local = self.iso8601 = ""

    def update(self, monotonic_now):
        wall = time.time()
        second = int(wall)
        self.expires = monotonic_now + (second + 1 - wall)
        moment = time.localtime(second)
        self.local = time.strftime(TIME_LOCAL, moment)
        self.iso8601 = time.strftime(TIME_ISO8601, moment)


# Access log fields as Python expressions. Request fields depend on the request alone (its head is parsed
# once and reused, so their escaped text is computed once per request head); line fields are computed for
# every line. Names: request (ex.request, None when it was refused unparsed), ex (the Response, see
# http/output.py), address (the client's), peer (the socket's other end, a proxy's when the client came
# through one; None: the client's), n (body bytes sent), aborted, now (the worker's loop time), clock
# (LogClock), numbers (NumberTexts), site_name (request -> the name of the site answering it).
REQUEST_FIELDS = {
    "request": "escape(request.line) if request is not None else rejected_request_line(ex.received)",
    "host": '(escape(request.host) or "-") if request is not None else "-"',
    "site": 'escape(site_name(request)) if request is not None else "-"',
    "request_method": 'request.method if request is not None else "-"',
    "request_uri": 'escape(request.target) if request is not None else "-"',
}
HEADER_FIELD = 'escape(request.headers.get(%r, "-")) if request is not None else "-"'
LINE_FIELDS = {
    "remote_addr": 'address[0] if address.__class__ is tuple else "unix"',
    "remote_port": 'address[1] if address.__class__ is tuple else "-"',
    "realip_remote_addr": "host_text(peer or address)",
    "time_local": "clock.local",
    "time_iso8601": "clock.iso8601",
    "status": "numbers[ex.status]",
    "body_bytes_sent": "numbers[n]",
    "bytes_sent": "numbers[n + ex.head_bytes]",
    # the worker's loop time, as nginx's cached time: a reply sent in the loop turn that queued it took 0
    "request_time": '"0.000" if ex.started == now else seconds_text(now - ex.started)',
    "request_completion": '"" if aborted else "OK"',
    "pid": "getpid()",
    # the TLS session of the response's connection (nginx's names and values; "-" on plain HTTP)
    "scheme": '"http" if ex.tls is None else "https"',
    "ssl_protocol": '"-" if ex.tls is None else ex.tls.protocol',
    "ssl_cipher": '"-" if ex.tls is None else ex.tls.cipher',
    "ssl_session_reused": '"-" if ex.tls is None else "r" if ex.tls.reused else "."',
}
# A compiled format: request_chunks() joins the literal text and request fields found between two line
# fields (once per request, then cached); access() builds the line as one f-string (no call per field)
# from the chunks and line fields, and buffers it. Line field expressions hold no ' and no backslash.
FORMAT_SOURCE = """
def request_chunks(request, ex):
    chunks = ({chunks})
    if request is not None and len(request.line) + sum(map(len, request.headers.values())) <= CACHED_HEAD_MAX:
        if len(cache) >= REQUEST_CHUNKS_MAX:
            cache.clear()
        cache[request] = chunks
    return chunks

def access(address, now, ex, n, aborted, peer=None):
    if now >= clock.expires:
        clock.update(now)
{lookup}    append({line})
    if len(buffer) >= ACCESS_FLUSH_LINES:
        flush()
"""
CHUNKS_LOOKUP = "    chunks = cache.get(ex.request) or request_chunks(ex.request, ex)\n"


def parse_access_format(fmt):
    """[(literal text, field name or None)] of a format: each `$field` with the text before it."""
    pieces = []
    position = 0
    for m in FIELD.finditer(fmt):
        pieces.append((fmt[position:m.start()], m[1]))
        position = m.end()
    pieces.append((fmt[position:] + "\n", None))
    return pieces


def request_field(name):
    """The expression of a request field, or None for a line field; ValueError for an unknown one."""
    if name in REQUEST_FIELDS:
        return REQUEST_FIELDS[name]
    if name.startswith(HEADER_FIELD_PREFIX) and len(name) > len(HEADER_FIELD_PREFIX):
        return HEADER_FIELD % name[len(HEADER_FIELD_PREFIX):].replace("_", "-")
    if name in LINE_FIELDS:
        return None
    raise ValueError(f"access_log_format: unknown field ${name}")


def check_access_format(fmt):
    """Raise ValueError naming the first unknown field of an access log format."""
    for _, name in parse_access_format(fmt):
        if name is not None:
            request_field(name)


def compile_access_format(fmt, buffer, flush, site_name=None):
    """An access log format compiled into access(address, now, response, body_bytes, aborted, peer), which
    appends one line to `buffer` and calls flush() when it holds ACCESS_FLUSH_LINES; `site_name(request)` gives
    $site. Like the class collections.namedtuple compiles, its source is generated: from the expressions of the fields named,
    never from the format's own text, which only appears as string literals. ValueError for an unknown field.
    """
    chunks = []  # expressions of the text that depends on the request alone
    parts = []  # one line as adjacent f-strings: literal text, chunks[i] and line fields
    run = []  # literal text and request fields since the last line field
    for text, name in parse_access_format(fmt):
        run.append(repr(text))
        expression = request_field(name) if name is not None else None
        if expression is not None:
            run.append(f"({expression})")
            continue
        if len(run) > 1:
            parts.append(f"f'{{chunks[{len(chunks)}]}}'")
            chunks.append(" + ".join(run))
        elif text:
            parts.append("f" + repr(text).replace("{", "{{").replace("}", "}}"))
        if name is not None:
            parts.append(f"f'{{({LINE_FIELDS[name]})}}'")
        run = []
    source = FORMAT_SOURCE.format(chunks="".join(c + ", " for c in chunks), line=" ".join(parts),
                                  lookup=CHUNKS_LOOKUP if chunks else "")
    namespace = {"escape": escape, "rejected_request_line": rejected_request_line, "seconds_text": seconds_text,
                 "host_text": host_text, "getpid": os.getpid, "site_name": site_name or default_site_name,
                 "clock": LogClock(), "cache": {}, "numbers": NumberTexts(), "buffer": buffer,
                 "append": buffer.append, "flush": flush, "REQUEST_CHUNKS_MAX": REQUEST_CHUNKS_MAX,
                 "CACHED_HEAD_MAX": CACHED_HEAD_MAX, "ACCESS_FLUSH_LINES": ACCESS_FLUSH_LINES}
    exec(source, namespace)
    return namespace["access"]


def default_site_name(request):
    return "default"


class WriteFault:
    """A log that cannot be written (a full disk: ENOSPC) is reported once when the fault starts, and once
    when writing works again, with the count of what was dropped meanwhile: never once per write."""

    def __init__(self, what, unit, report):
        self.what = what
        self.unit = unit  # what is counted as dropped: "lines", "records"
        self.report = report  # report(format, *args): where the two lines go
        self.dropped = 0

    def failed(self, error, count):
        if not self.dropped:
            self.report("cannot write %s: %s; dropping %s until it works again", self.what,
                        getattr(error, "strerror", None) or error,
                        self.unit)
        self.dropped += count

    def recovered(self):
        if self.dropped:
            self.report("%s written again; %d %s were dropped", self.what, self.dropped, self.unit)
            self.dropped = 0


class AccessLog:
    """The access log of one worker: `access(address, now, response, body_bytes, aborted, peer)` buffers a line
    (with what was actually sent of the body); the buffer is written when full, on flush() (every worker tick)
    and at exit, and when the file is reopened (USR1). `site_name(request)` names a request's site ($site)."""

    def __init__(self, path, fmt, site_name=None):
        self.path = path
        self.enabled = path != "off"
        self.buffer = []
        self.access = compile_access_format(fmt, self.buffer, self.flush, site_name)
        self.fault = WriteFault(f"access log {path}", "lines", logging.getLogger("oserver").error)
        self.fd = None
        self.reopen()

    def flush(self):
        if not self.buffer:
            return
        lines = len(self.buffer)
        data = "".join(self.buffer).encode("utf-8", "backslashreplace")
        self.buffer.clear()
        try:
            while data:
                data = data[os.write(self.fd, data):]
        except OSError as e:
            self.fault.failed(e, lines)
        else:
            self.fault.recovered()

    def reopen(self):
        """Open the log file again (after logrotate moved it away): pending lines go to the old file first."""
        if not self.enabled:
            return
        if self.fd is not None:
            self.flush()
        if self.path == "-":
            self.fd = sys.stdout.fileno()
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            if self.fd is None:
                raise
            logging.getLogger("oserver").error("cannot reopen access log %s: %s; still writing to the old file",
                                               self.path, e.strerror)
            return
        if self.fd is not None:
            os.close(self.fd)
        self.fd = fd


class ErrorLogFile(logging.FileHandler):
    """The error log's file: a write that fails (a full disk) is reported once on stderr, with the count of
    records dropped once writing works again, instead of logging's traceback for every record."""

    def __init__(self, path):
        super().__init__(path)
        self.fault = WriteFault(f"error log {path}", "records", self.tell_stderr)
        self.failing = False

    def emit(self, record):
        self.failing = False
        super().emit(record)
        if not self.failing:
            self.fault.recovered()

    def handleError(self, record):
        self.failing = True
        self.fault.failed(sys.exc_info()[1], 1)

    @staticmethod
    def tell_stderr(fmt, *args):
        try:
            sys.stderr.write("oserver: " + fmt % args + "\n")
        except OSError:
            pass


def setup_error_log(path, level):
    """Point the `oserver` logger at stderr or a file, at the given level name."""
    logger = logging.getLogger("oserver")
    logger.setLevel(level.upper())
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    handler = logging.StreamHandler(sys.stderr) if path == "-" else ErrorLogFile(path)
    handler.setFormatter(logging.Formatter(ERROR_FORMAT))
    logger.addHandler(handler)
    logger.propagate = False
    return logger


def reopen_error_log():
    """Reopen a file error log (USR1); stderr is left alone. A file that cannot be opened keeps the old one."""
    for handler in logging.getLogger("oserver").handlers:
        if isinstance(handler, logging.FileHandler):
            try:
                stream = handler._open()
            except OSError as e:
                logging.getLogger("oserver").error("cannot reopen error log %s: %s; still writing to the old file",
                                                   handler.baseFilename, e.strerror)
                continue
            handler.acquire()
            try:
                if handler.stream is not None:
                    handler.stream.close()
                handler.stream = stream
            finally:
                handler.release()
