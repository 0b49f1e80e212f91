"""Static files: URL path -> file under the document root -> a Reply (status, header fields, body parts).

Owns the root jail, index files, MIME types, validators, precompressed variants and the open-file cache,
and wires in the pure rules of conditional.py, ranges.py and listing.py. It reads the filesystem but never
touches sockets; the connection sends what a Reply describes.
"""

import mimetypes
import os
import re
import stat
import time
from urllib.parse import unquote_to_bytes

from oserver.files.conditional import (NOT_MODIFIED, PRECONDITION_FAILED, cache_short_values, evaluate_preconditions,
                                       if_range_holds)
from oserver.files.listing import DirectoryEntry, listing_page
from oserver.files.ranges import byte_ranges, content_range, multipart_layout, unsatisfied_range
from oserver.http.output import Data, FileSpan
from oserver.http.parser import METHODS_SERVED, HttpError
from oserver.http.response import ALLOW_FIELD, Reply, error_reply, http_date, redirect_reply

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
# Request fields that can change the answer for a file: anything else takes the fast path (RFC 9110 13.2.2:
# If-Range only matters with a Range).
CONDITIONAL_FIELDS = frozenset(("if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "range"))
# Precompressed sidecars (nginx gzip_static, Caddy precompressed), in the server's order of preference.
PRECOMPRESSED_SUFFIXES = (("br", ".br"), ("gzip", ".gz"))
PRECOMPRESSED_CODINGS = tuple(coding for coding, _ in PRECOMPRESSED_SUFFIXES)
CODING_ALIASES = {"x-gzip": "gzip"}  # RFC 9110 8.4.1.3
QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")  # RFC 9110 12.4.2
VARY_FIELD = "Vary: Accept-Encoding\r\n"
BOUNDARY_BYTES = 12  # random bytes in a multipart boundary: no file will happen to contain it
LISTING_FIELDS = b"Content-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n"
NOT_FOUND = error_reply(404)  # one object: a 404 from resolve() is recognised by identity, and cached


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
    try:
        octets = raw_path.encode("latin-1")  # the request target's own octets (raw UTF-8 included)
    except UnicodeEncodeError:  # a str that never came off the wire
        octets = raw_path.encode("utf-8")
    decoded = unquote_to_bytes(octets)
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


class FileEntry:
    """One open regular file: its validators, its precomputed header fields and, for small files, its bytes.
    An entry for a URL also holds its precompressed variants ({coding: FileEntry}) and, while it sits in the
    lookup cache, the signature of the files it was built from and when that must be checked again."""

    __slots__ = ("path", "file", "size", "mtime", "etag", "content_type", "type_line", "meta", "fields",
                 "validators", "data", "whole", "variants", "signature", "expires")

    def __init__(self, path, file, st, data, ctype, cache_fields, encoding_field=""):
        self.path = path
        self.file = file
        self.size = st.st_size
        self.mtime = int(st.st_mtime)
        self.etag = '"%x-%x-%x"' % (st.st_mtime_ns // 1000, st.st_size, st.st_ino)
        self.content_type = ctype
        self.data = data
        self.variants = {}
        self.signature = None
        self.expires = 0.0
        validators = f"Last-Modified: {http_date(self.mtime)}\r\nETag: {self.etag}\r\n{cache_fields}"
        self.type_line = f"Content-Type: {ctype}\r\n".encode("latin-1")
        self.meta = f"{validators}Accept-Ranges: bytes\r\n{encoding_field}".encode("latin-1")
        self.fields = self.type_line + b"Content-Length: %d\r\n" % self.size + self.meta
        self.validators = validators.encode("latin-1")  # RFC 9110 15.4.5: what a 304 carries
        self.whole = Reply(200, self.fields, data) if data is not None else None

    def reply(self):
        """200 with the whole file: its cached bytes (one Reply, built once), or a FileSpan over it."""
        return self.whole or Reply(200, self.fields, b"", (FileSpan(self.file, 0, self.size),))

    def span(self, first, last):
        """Bytes first..last (inclusive) as a FileSpan (a file not held in memory)."""
        return FileSpan(self.file, first, last - first + 1)

    def memory(self):
        """Bytes of file contents this entry and its variants keep in memory."""
        return sum(len(e.data) for e in (self, *self.variants.values()) if e.data is not None)


def stat_identity(path):
    """What identifies a file's current contents (inode, size, mtime), or None when there is no such file."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


@cache_short_values
def preferred_codings(accept_encoding):
    """The precompressed codings an Accept-Encoding value allows, best first (RFC 9110 12.5.3): q=0 refuses
    a coding, "*" stands for the codings it does not name, x-gzip is gzip; on equal weight br goes first."""
    weights = {}
    for element in accept_encoding.split(","):
        coding, _, params = element.partition(";")
        coding = coding.strip(" \t").lower()
        if coding:
            weights[CODING_ALIASES.get(coding, coding)] = qvalue(params)
    default = weights.get("*", 0.0)
    ranked = sorted(PRECOMPRESSED_CODINGS, key=lambda coding: -weights.get(coding, default))
    return tuple(coding for coding in ranked if weights.get(coding, default) > 0)


def qvalue(params):
    """RFC 9110 12.4.2: the weight among `;`-separated parameters (1 when absent, 0 when malformed)."""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip(" \t").lower() == "q":
            value = value.strip(" \t")
            return float(value) if QVALUE.fullmatch(value) else 0.0
    return 1.0


def directory_entries(directory):
    """The directories and regular files in `directory` (symlinks followed; anything else left out)."""
    entries = []
    with os.scandir(directory) as scan:
        for item in scan:
            try:
                st = item.stat()
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
                entries.append(DirectoryEntry(item.name, stat.S_ISDIR(st.st_mode), st.st_size, st.st_mtime))
    return entries


class StaticFiles:
    """Answers GET/HEAD for files under one root, with a short-lived cache of lookups (open_file_cache)."""

    def __init__(self, config):
        self.config = config
        self.root = os.path.abspath(config.root)
        self.real_root = os.path.realpath(self.root)
        self.max_age_by_ext = {ext.lower().lstrip("."): age for ext, age in config.cache_max_age_by_ext.items()}
        self.sidecars = PRECOMPRESSED_SUFFIXES if config.precompressed else ()
        self.cache = {}  # raw URL path -> FileEntry (many spellings may name one file)
        self.missing = {}  # raw URL path -> until when it answers 404 without a look
        self.files = {}  # filesystem path -> FileEntry: one open file per file, however it is spelled
        self.cached_bytes = 0

    def respond(self, request, path=None):
        """The Reply for a parsed request (for the file at URL `path` instead of the request's, when given: a
        site's try_files). A request without Range or If-* fields (and, for a file with precompressed variants,
        without Accept-Encoding) costs one lookup and one isdisjoint test."""
        if request.method not in METHODS_SERVED:
            return error_reply(405, ALLOW_FIELD)
        entry = self.lookup(path or request.path, request.query)
        if entry.__class__ is Reply:
            return entry
        headers = request.headers
        if entry.variants and "accept-encoding" in headers:
            entry = negotiate(entry, headers["accept-encoding"])
        if CONDITIONAL_FIELDS.isdisjoint(headers):
            return entry.whole or entry.reply()  # a file held in memory: its Reply, without a call
        return self.conditional_reply(entry, request.method, headers)

    def conditional_reply(self, entry, method, headers):
        """RFC 9110 13.2.2: preconditions first (412 / 304), then If-Range and Range (GET only, 14.2)."""
        status = evaluate_preconditions(method, headers, entry.etag, entry.mtime)
        if status == PRECONDITION_FAILED:
            return error_reply(412)
        if status == NOT_MODIFIED:
            return Reply(304, entry.validators)
        range_value = headers.get("range")
        if range_value is not None and method == "GET" and \
                ("if-range" not in headers or if_range_holds(headers["if-range"], entry.etag, entry.mtime)):
            return self.range_reply(entry, range_value)
        return entry.reply()

    def range_reply(self, entry, range_value):
        """206 with one range or a multipart/byteranges body, 416 when none is satisfiable, or the whole
        file (200) when the Range header is to be ignored."""
        ranges = byte_ranges(range_value, entry.size, self.config.max_ranges)
        if ranges is None:
            return entry.reply()
        if not ranges:
            return error_reply(416, unsatisfied_range(entry.size))
        if len(ranges) == 1:
            first, last = ranges[0]
            fields = b"%sContent-Length: %d\r\nContent-Range: %s\r\n%s" % (
                entry.type_line, last - first + 1, content_range(first, last, entry.size), entry.meta)
            if entry.data is not None:
                return Reply(206, fields, entry.data[first:last + 1])
            return Reply(206, fields, parts=(entry.span(first, last),))
        boundary = os.urandom(BOUNDARY_BYTES).hex().encode()
        heads, closing, length = multipart_layout(ranges, entry.size, entry.content_type.encode("latin-1"),
                                                  boundary)
        fields = b"Content-Type: multipart/byteranges; boundary=%s\r\nContent-Length: %d\r\n%s" % (
            boundary, length, entry.meta)
        if entry.data is not None:
            data = b"".join(head + entry.data[first:last + 1] for head, (first, last) in zip(heads, ranges))
            return Reply(206, fields, data + closing)
        parts = [part for head, (first, last) in zip(heads, ranges) for part in (Data(head), entry.span(first, last))]
        parts.append(Data(closing))
        return Reply(206, fields, parts=tuple(parts))

    def lookup(self, raw_path, query=""):
        """A FileEntry for a URL path (from the cache while valid), or the Reply that answers it instead."""
        entry = self.cache.get(raw_path)
        now = time.monotonic()
        if entry is not None:
            if entry.expires > now:
                return entry
            del self.cache[raw_path]
        elif self.missing.get(raw_path, 0.0) > now:
            return NOT_FOUND
        found = self.resolve(raw_path, query)
        if found.__class__ is Reply:
            if found is NOT_FOUND:
                self.remember_missing(raw_path, now)
            return found
        entry = self.file_entry(found, now)
        if entry.__class__ is FileEntry and self.config.open_file_cache_valid > 0:
            if len(self.cache) >= MAX_CACHED_LOOKUPS:
                del self.cache[next(iter(self.cache))]
            self.cache[raw_path] = entry
        return entry

    def remember_missing(self, raw_path, now):
        """A URL path that named no file answers 404 for open_file_cache_valid without another look (nginx's
        open_file_cache_errors): a file created meanwhile is served as late as a changed one is noticed."""
        if self.config.open_file_cache_valid > 0:
            if len(self.missing) >= MAX_CACHED_LOOKUPS:
                del self.missing[next(iter(self.missing))]
            self.missing[raw_path] = now + self.config.open_file_cache_valid

    def file_entry(self, path, now):
        """The FileEntry of a filesystem path: the cached one while the file is unchanged, else a new one."""
        entry = self.files.get(path)
        if entry is not None:
            if entry.expires > now or self.still_valid(entry):
                entry.expires = now + self.config.open_file_cache_valid
                return entry
            self.forget(path)
        entry = self.open_entry(path)
        if entry.__class__ is FileEntry and self.config.open_file_cache_valid > 0:
            entry.expires = now + self.config.open_file_cache_valid
            self.remember(path, entry)
        return entry

    def resolve(self, raw_path, query):
        """The filesystem path a URL path names, or the Reply (301/403/404, a listing) that answers it."""
        segments = url_path_to_segments(raw_path, self.config.serve_dotfiles)
        if segments is None:
            return NOT_FOUND
        path = os.path.join(self.root, *segments)
        try:
            st = os.stat(path)
        except PermissionError:
            return error_reply(403)
        except (OSError, ValueError):
            return NOT_FOUND
        wants_directory = raw_path.endswith("/")
        if stat.S_ISDIR(st.st_mode):
            if not wants_directory:
                return slash_redirect(raw_path, query)
            return self.resolve_index(path, segments)
        if wants_directory or not stat.S_ISREG(st.st_mode):
            return NOT_FOUND
        return path

    def resolve_index(self, directory, segments):
        for name in self.config.index:
            path = os.path.join(directory, name)
            if os.path.isfile(path):
                return path
        if self.config.autoindex:
            return self.listing_reply(directory, "/" + "".join(segment + "/" for segment in segments))
        return NOT_FOUND

    def listing_reply(self, directory, url_path):
        """The autoindex page of a directory inside the root (never cached: it is read on each request)."""
        if not is_inside(os.path.realpath(directory), self.real_root):
            return NOT_FOUND  # a symlink leading out of the root
        try:
            entries = directory_entries(directory)
        except PermissionError:
            return error_reply(403)
        except OSError:
            return NOT_FOUND
        page = listing_page(url_path, entries)
        return Reply(200, LISTING_FIELDS % len(page), page)

    def open_entry(self, path):
        """The FileEntry of a regular file inside the root, with its precompressed variants; 403/404 instead
        when it cannot be opened."""
        signature = self.signature(path)
        opened = self.open_file(path)
        if opened.__class__ is Reply:
            return opened
        ctype = content_type(path, self.config.charset)
        sidecars = {}
        for coding, suffix in self.sidecars:
            sidecar = self.open_file(path + suffix)
            if sidecar.__class__ is not Reply:
                sidecars[coding] = (path + suffix, *sidecar)
        cache_fields = self.cache_control(path) + (VARY_FIELD if sidecars else "")
        entry = FileEntry(path, *opened, ctype, cache_fields)
        entry.variants = {coding: FileEntry(*sidecar, ctype, cache_fields, f"Content-Encoding: {coding}\r\n")
                          for coding, sidecar in sidecars.items()}
        entry.signature = signature
        return entry

    def open_file(self, path):
        """(file, stat, bytes or None) for a regular file inside the root, or the 403/404 Reply instead."""
        if not is_inside(os.path.realpath(path), self.real_root):
            return NOT_FOUND  # a symlink leading out of the root
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except PermissionError:
            return error_reply(403)
        except (OSError, ValueError):
            return NOT_FOUND
        file = os.fdopen(fd, "rb", buffering=0)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced by a FIFO or device since the stat
            file.close()
            return NOT_FOUND
        data = None
        if st.st_size <= self.config.small_file_max and self.cached_bytes + st.st_size <= \
                self.config.small_file_cache_bytes:
            data = os.pread(fd, st.st_size, 0)
            if len(data) != st.st_size:
                data = None
        return file, st, data

    def cache_control(self, path):
        ext = os.path.splitext(path)[1].lower().lstrip(".")
        age = self.max_age_by_ext.get(ext, self.config.cache_max_age)
        return f"Cache-Control: max-age={age}\r\n" if age >= 0 else ""

    def signature(self, path):
        """The identities of a file and of its possible sidecars (None for an absent one)."""
        return (stat_identity(path), *(stat_identity(path + suffix) for _, suffix in self.sidecars))

    def still_valid(self, entry):
        """Are the file and its sidecars (present or absent) still the ones the entry was built from?"""
        return self.signature(entry.path) == entry.signature

    def remember(self, path, entry):
        if len(self.files) >= MAX_CACHED_LOOKUPS:
            self.forget(next(iter(self.files)))
        self.files[path] = entry
        self.cached_bytes += entry.memory()

    def forget(self, path):
        entry = self.files.pop(path)
        self.cached_bytes -= entry.memory()


def slash_redirect(raw_path, query):
    """301 from a directory's URL path to the same with a trailing slash (the query kept)."""
    return redirect_reply(raw_path + "/" + ("?" + query if query else ""))


def negotiate(entry, accept_encoding):
    """The variant of a file to send for an Accept-Encoding value: the best precompressed one allowed, or
    the file itself."""
    for coding in preferred_codings(accept_encoding):
        variant = entry.variants.get(coding)
        if variant is not None:
            return variant
    return entry
