"""Static files: URL path -> file under the document root -> a Reply (status, header fields, body parts).

Owns the root jail, index files, MIME types, validators and the open-file cache. It reads the filesystem
but never touches sockets; the connection sends what a Reply describes.
"""

import mimetypes
import os
import stat
import time
from urllib.parse import unquote_to_bytes

from oserver.http import ALLOW_FIELD, ERROR_BODIES, METHODS_SERVED, HttpError, error_fields, http_date

CONTENT_TYPES = {
    ".html": "text/html", ".htm": "text/html", ".css": "text/css", ".js": "application/javascript",
    ".mjs": "application/javascript", ".json": "application/json", ".txt": "text/plain", ".xml": "text/xml",
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
    ".svg": "image/svg+xml", ".ico": "image/x-icon", ".webp": "image/webp",
    ".swf": "application/x-shockwave-flash", ".pdf": "application/pdf", ".mp4": "video/mp4",
    ".webm": "video/webm", ".mp3": "audio/mpeg", ".woff": "font/woff", ".woff2": "font/woff2",
    ".wasm": "application/wasm", ".zip": "application/zip", ".gz": "application/gzip",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"
CHARSET_TYPES = ("application/javascript", "application/json")
BUILTIN_TYPES = mimetypes.MimeTypes(filenames=()).types_map[True]  # no /etc/mime.types: same everywhere
MAX_CACHED_LOOKUPS = 4096


def content_type(name, charset=""):
    """The Content-Type for a file name, from its extension; `charset` is added to text types."""
    ext = os.path.splitext(name)[1].lower()
    ctype = CONTENT_TYPES.get(ext) or BUILTIN_TYPES.get(ext) or DEFAULT_CONTENT_TYPE
    if charset and (ctype.startswith("text/") or ctype in CHARSET_TYPES):
        ctype += "; charset=" + charset
    return ctype


def url_path_to_segments(raw_path, serve_dotfiles=False):
    """Percent-decoded, normalised path segments of a URL path, or None when it names a hidden dot-file.

    `.` and empty segments vanish, `..` climbs one level and may never climb above the root (400); NUL bytes
    and invalid UTF-8 (overlong forms included) are refused with 400. Pure: touches no filesystem.
    """
    decoded = unquote_to_bytes(raw_path)
    if b"\0" in decoded:
        raise HttpError(400, "NUL byte in path")
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(400, "path is not valid UTF-8") from None
    segments = []
    for segment in text.split("/"):
        if segment == "" or segment == ".":
            continue
        if segment == "..":
            if not segments:
                raise HttpError(400, "path climbs above the root")
            segments.pop()
        elif segment[0] == "." and not serve_dotfiles:
            return None
        else:
            segments.append(segment)
    return segments


def is_inside(real_path, real_root):
    return real_path == real_root or real_path.startswith(real_root + os.sep)


class FileSpan:
    """`count` bytes of an open file from `offset`, sent with sendfile."""

    __slots__ = ("file", "offset", "count")

    def __init__(self, file, offset, count):
        self.file = file
        self.offset = offset
        self.count = count


class Reply:
    """What to answer: a status, header field lines (bytes, CRLF-ended) and body parts (bytes / FileSpan)."""

    __slots__ = ("status", "fields", "body")

    def __init__(self, status, fields, body=()):
        self.status = status
        self.fields = fields
        self.body = body


def error_reply(status, extra_fields=b""):
    return Reply(status, error_fields(status, extra_fields), (ERROR_BODIES[status],))


def redirect_reply(location):
    return error_reply(301, b"Location: %s\r\n" % location.encode("latin-1"))


class FileEntry:
    """A cached lookup of one regular file: its open handle, validators, precomputed header fields and,
    for small files, its bytes."""

    __slots__ = ("path", "file", "identity", "size", "mtime", "content_type", "etag", "last_modified", "fields",
                 "data", "expires")

    def __init__(self, path, file, st, ctype, cache_control, data, expires):
        self.path = path
        self.file = file
        self.identity = (st.st_ino, st.st_size, st.st_mtime_ns)
        self.size = st.st_size
        self.mtime = int(st.st_mtime)
        self.content_type = ctype
        self.etag = '"%x-%x-%x"' % (st.st_mtime_ns // 1000, st.st_size, st.st_ino)
        self.last_modified = http_date(self.mtime)
        self.fields = (f"Content-Type: {ctype}\r\nContent-Length: {self.size}\r\n"
                       f"Last-Modified: {self.last_modified}\r\nETag: {self.etag}\r\n"
                       f"Accept-Ranges: bytes\r\n{cache_control}").encode("latin-1")
        self.data = data
        self.expires = expires

    def body(self):
        if self.data is not None:
            return (self.data,)
        return (FileSpan(self.file, 0, self.size),)


class StaticFiles:
    """Answers GET/HEAD for files under one root, with a short-lived cache of lookups (open_file_cache)."""

    def __init__(self, config):
        self.config = config
        self.root = os.path.abspath(config.root)
        self.real_root = os.path.realpath(self.root)
        self.cache = {}
        self.cached_bytes = 0

    def respond(self, request):
        """The Reply for a parsed request."""
        if request.method not in METHODS_SERVED:
            return error_reply(405, ALLOW_FIELD)
        entry = self.lookup(request.path, request.query)
        if entry.__class__ is Reply:
            return entry
        return Reply(200, entry.fields, entry.body())

    def lookup(self, raw_path, query=""):
        """A FileEntry for a URL path (from the cache while valid), or the Reply that answers it instead."""
        entry = self.cache.get(raw_path)
        now = time.monotonic()
        if entry is not None:
            if entry.expires > now:
                return entry
            if self.still_valid(entry):
                entry.expires = now + self.config.open_file_cache_valid
                return entry
            self.forget(raw_path)
        found = self.resolve(raw_path, query)
        if found.__class__ is Reply:
            return found
        entry = self.open_entry(found, now)
        if entry.__class__ is FileEntry and self.config.open_file_cache_valid > 0:
            self.remember(raw_path, entry)
        return entry

    def resolve(self, raw_path, query):
        """The filesystem path a URL path names, or the Reply (301/403/404) that answers it instead."""
        segments = url_path_to_segments(raw_path, self.config.serve_dotfiles)
        if segments is None:
            return error_reply(404)
        path = os.path.join(self.root, *segments)
        try:
            st = os.stat(path)
        except PermissionError:
            return error_reply(403)
        except (OSError, ValueError):
            return error_reply(404)
        wants_directory = raw_path.endswith("/")
        if stat.S_ISDIR(st.st_mode):
            if not wants_directory:
                return redirect_reply(raw_path + "/" + ("?" + query if query else ""))
            return self.resolve_index(path)
        if wants_directory or not stat.S_ISREG(st.st_mode):
            return error_reply(404)
        return path

    def resolve_index(self, directory):
        for name in self.config.index:
            path = os.path.join(directory, name)
            if os.path.isfile(path):
                return path
        return error_reply(404)

    def open_entry(self, path, now):
        """Open a regular file inside the root and describe it; 403/404 when that is not possible."""
        if not is_inside(os.path.realpath(path), self.real_root):
            return error_reply(404)  # a symlink leading out of the root
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except PermissionError:
            return error_reply(403)
        except OSError:
            return error_reply(404)
        file = os.fdopen(fd, "rb", buffering=0)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced by a FIFO or device since the stat
            file.close()
            return error_reply(404)
        data = None
        if st.st_size <= self.config.small_file_max and self.cached_bytes + st.st_size <= \
                self.config.small_file_cache_bytes:
            data = os.pread(fd, st.st_size, 0)
            if len(data) != st.st_size:
                data = None
        return FileEntry(path, file, st, content_type(path, self.config.charset), self.cache_control(path),
                         data, now + self.config.open_file_cache_valid)

    def cache_control(self, path):
        ext = os.path.splitext(path)[1].lower().lstrip(".")
        age = self.config.cache_max_age_by_ext.get(ext, self.config.cache_max_age)
        return f"Cache-Control: max-age={age}\r\n" if age >= 0 else ""

    def still_valid(self, entry):
        try:
            st = os.stat(entry.path)
        except OSError:
            return False
        return (st.st_ino, st.st_size, st.st_mtime_ns) == entry.identity

    def remember(self, raw_path, entry):
        if len(self.cache) >= MAX_CACHED_LOOKUPS:
            self.forget(next(iter(self.cache)))
        self.cache[raw_path] = entry
        if entry.data is not None:
            self.cached_bytes += entry.size

    def forget(self, raw_path):
        entry = self.cache.pop(raw_path)
        if entry.data is not None:
            self.cached_bytes -= entry.size
