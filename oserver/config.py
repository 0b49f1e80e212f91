"""Configuration: one frozen Config built from defaults < TOML file < command-line flags, then validated.

This module is the single source of truth for every option: its name, default, type, check and help text.
It never touches sockets or processes.
"""

import dataclasses
import grp
import ipaddress
import os
import pwd
import re
import tomllib
from dataclasses import dataclass, field
from typing import ClassVar

from oserver.http.grammar import FIELD_NAME, FIELD_VALUE
from oserver.http.response import ERROR_BODIES, SERVER_OWNED_FIELDS
from oserver.logs import check_access_format


class ConfigError(Exception):
    """A configuration problem, with a message naming the offending key."""


LOG_LEVELS = ("debug", "info", "warning", "error")
# "package.module:callable" (gunicorn's APP_MODULE form); the attribute may be dotted (module:app.wsgi)
MOUNT_SPEC = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
MAX_WORKERS = 128  # per generation; SIGTTIN stops there too
MAX_THREADS = 1024  # per worker
PENDING_PER_THREAD = 4  # max_pending = 0: this many waiting requests per thread
# A [[site]]'s server name: a host name, or "*." before one (any name ending so), or an IP address.
SERVER_NAME = re.compile(r"(?:\*\.)?[a-z0-9_-]+(?:\.[a-z0-9_-]+)*|\[[0-9a-f:.]+\]")
REDIRECT_TARGET = re.compile(r"(?:/|[A-Za-z][A-Za-z0-9+.-]*://)[\x21-\x7e]*")  # a path, or an absolute URL
REDIRECT_STATUSES = (301, 302, 307, 308)
PROXY_PROTOCOL = "proxy_protocol"  # the real_ip_header value naming the PROXY protocol header, not an HTTP one

TLS_PROTOCOLS = ("TLSv1.2", "TLSv1.3")
# Mozilla's "intermediate" TLS 1.2 suites (ssl-config.mozilla.org, v5.7), the ECDHE ones: forward secret, AEAD
# only. (Its DHE suites would need DH parameters; TLS 1.3 suites are OpenSSL's own, all of them strong.)
MOZILLA_INTERMEDIATE_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")
TLS_SERVER_NAME = re.compile(r"(?:\*\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*")  # a certificate's name, or *.domain


def option(default, help, *, check=None, unit="", path=None, parse=None, tables=None, site=False, flag=True):
    """A Config field carrying its help text, an optional value check (a function returning what is wrong with a
    value, or None) and, for a path option, the values that name no file (a relative path in a config file is
    taken from the file's directory). `parse` turns a value of the right type into its canonical form (ValueError
    says what is wrong); `tables` parses an array of tables ([[location]]) given its key; `site`: a [[site]] may set
    it too; `flag`: it has a command-line flag."""
    metadata = {"help": help, "check": check, "unit": unit, "path": path, "parse": parse, "tables": tables,
                "site": site, "flag": flag}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def in_range(low, high):
    return lambda value: None if low <= value <= high else f"{value!r} is not in {low}..{high}"


def at_least(low):
    return lambda value: None if value >= low else f"{value!r} is not >= {low}"


def above(low):
    return lambda value: None if value > low else f"{value!r} is not > {low}"


def header_name(value):
    """A header field name (RFC 9110 5.1: a token)."""
    return None if FIELD_NAME.fullmatch(value) else f"{value!r} is not a header name"


def one_of(choices):
    return lambda value: None if value in choices else f"{value!r} is not one of {', '.join(map(str, choices))}"


def ip_networks(values):
    """Every value an IP address or a CIDR network (10.0.0.0/8, fd00::/8)."""
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            return f"{value!r} is not an IP address or network"
    return None


def url_prefix_problem(prefix):
    """What is wrong with a URL path prefix (of a mount, a location), matched on decoded, normalised paths."""
    if not prefix.startswith("/") or not set(prefix).isdisjoint("?#%") or "//" in prefix or \
            {".", ".."} & set(prefix.split("/")):
        return f"{prefix!r} must be a plain URL path prefix starting with /"
    return None


def header_table(table):
    """Response header fields, {name: value} as written (an empty value removes the field); ValueError for an
    invalid field, a name given twice, or a field the server owns (framing, Date, Server)."""
    seen = set()
    for name, value in table.items():
        if FIELD_NAME.fullmatch(name) is None:
            raise ValueError(f"{name!r} is not a header field name")
        if name.lower() in SERVER_OWNED_FIELDS:
            raise ValueError(f"{name} is the server's own field")
        if name.lower() in seen:
            raise ValueError(f"{name} is set twice")
        seen.add(name.lower())
        if not isinstance(value, str) or FIELD_VALUE.fullmatch(value) is None or value != value.strip(" \t"):
            raise ValueError(f"{name}: {value!r} is not a header field value")
    return dict(table)


def merge_headers(base, override):
    """Header fields `base` with those of `override` added, replacing (or, with an empty value, removing) the
    fields of the same name in any case."""
    replaced = {name.lower() for name in override}
    merged = {name: value for name, value in base.items() if name.lower() not in replaced}
    merged.update(override)
    return merged


def error_page_table(table):
    """{status: URL path of its page}: statuses 400-599 (TOML keys are strings), paths starting with /."""
    pages = {}
    for status, page in table.items():
        if not (status.isdigit() and 400 <= int(status) <= 599):
            raise ValueError(f"{status!r} is not an error status (400-599)")
        if not isinstance(page, str) or not page.startswith("/") or not set(page).isdisjoint("?#"):
            raise ValueError(f"{status}: {page!r} is not a URL path starting with /")
        pages[int(status)] = page
    return pages


def try_files_problem(entries):
    """What is wrong with a try_files list: paths with $uri (the request path), a trailing / naming a directory,
    the last the fallback: a path, or =STATUS; [] turns it off."""
    if not entries:
        return None
    if len(entries) < 2:
        return "needs what to try, then the fallback (e.g. [\"$uri\", \"/index.html\"])"
    *tried, fallback = entries
    for entry in tried + ([] if fallback.startswith("=") else [fallback]):
        if not entry.startswith(("/", "$uri")) or "$" in entry.replace("$uri", "") or \
                not set(entry).isdisjoint("?#"):
            return f"{entry!r} must be a URL path starting with / or $uri (the only variable)"
    status = fallback[1:]
    if fallback.startswith("=") and not (status.isdigit() and int(status) >= 400 and int(status) in ERROR_BODIES):
        return f"{fallback!r} is not =STATUS with an error status (e.g. =404)"
    return None


def redirect_problem(target):
    if target and REDIRECT_TARGET.fullmatch(target) is None:
        return f"{target!r} is not a path or an absolute URL in visible ASCII (percent-encode the rest)"
    return None


def parse_locations(tables, key):
    """[[location]] tables as LocationConfigs, each named `key[i]` in errors; prefixes must differ."""
    locations = []
    for i, table in enumerate(tables):
        where = f"{key}[{i}]."
        values = checked_table(table, LOCATION_FIELDS, where)
        location = LocationConfig(**values)
        if not location.prefix:
            raise ConfigError(f"{where}prefix: a location needs one")
        if "status" in values and not location.redirect:
            raise ConfigError(f"{where}status: only a redirect has a status")
        for j, other in enumerate(locations):
            if mount_prefix(other.prefix) == mount_prefix(location.prefix):
                raise ConfigError(f"{where}prefix: {location.prefix!r} is already {key}[{j}]'s")
        locations.append(location)
    return tuple(locations)


def all_of(choices):
    return lambda values: next((f"{value!r} is not one of {', '.join(choices)}" for value in values
                                if value not in choices), None) if values else "at least one value is needed"


positive = above(0)
non_negative = at_least(0)


@dataclass(frozen=True, slots=True)
class SniCertificate:
    """A [[tls_sni]] table: the names it serves (exact, or *.example.com for one more label) and its PEM
    files; an empty certificate_key means the key is in the certificate file."""

    server_names: tuple
    certificate: str
    certificate_key: str = ""
    PATHS: ClassVar[tuple] = ("certificate", "certificate_key")


def sni_certificates(value, key):
    """The [[tls_sni]] tables as SniCertificates."""
    return table_entries(key, SniCertificate, value)


@dataclass(frozen=True)
class LocationConfig:
    """A [[location]] of a site: what applies under one URL prefix."""

    prefix: str = option("", "URL path prefix, matched segment-wise on the decoded, normalised path (/old takes "
                         "/old and /old/..., not /older); the longest matching prefix wins",
                         check=url_prefix_problem)
    headers: dict = option({}, "header fields added to the site's (replacing those of the same name; an empty "
                           "value removes one)", parse=header_table)
    redirect: str = option("", "redirect here, with the rest of the path and the query appended",
                           check=redirect_problem)
    status: int = option(301, "the redirect's status: 301, 302, 307 or 308", check=one_of(REDIRECT_STATUSES))
    try_files: tuple = option(None, "the site's try_files for paths under this prefix ([] turns it off)",
                              check=try_files_problem)


@dataclass(frozen=True)
class SiteConfig:
    """A [[site]]: the host names it answers, and its options (the top-level ones with its own in their place)."""

    server_names: tuple
    config: "Config"


@dataclass(frozen=True)
class Config:
    # where and what
    root: str = option(".", "document root directory served to clients", path=(), site=True)
    bind: tuple = option(("0.0.0.0",), "addresses to listen on (IPv4 or IPv6, e.g. 0.0.0.0 or ::)")
    port: int = option(8080, "TCP port to listen on", check=in_range(1, 65535))
    backlog: int = option(1024, "listen() backlog", check=positive)
    index: tuple = option(("index.html",), "index file names tried for a directory URL, in order", site=True)
    autoindex: bool = option(False, "list directories that have no index file", site=True)
    serve_dotfiles: bool = option(False, "serve files and directories whose name starts with a dot", site=True)
    charset: str = option("", "charset parameter added to text/* types (e.g. utf-8); empty adds none", site=True)
    precompressed: bool = option(True, "serve file.br / file.gz beside file when the client accepts them", site=True)
    cache_max_age: int = option(-1, "Cache-Control max-age for files in seconds; -1 sends no Cache-Control",
                                check=at_least(-1), unit="s", site=True)
    cache_max_age_by_ext: dict = option({}, "Cache-Control max-age in seconds for files with this extension, "
                                        "overriding cache_max_age", site=True)
    # sites (README "Sites"): the top-level options are the default site's, and what a [[site]] does not set
    headers: dict = option({}, "header fields on every response of the default site (304 and errors included; a "
                           "[[site]] merges its own by name), replacing a file's own field of that name; an empty "
                           "value removes one", parse=header_table, site=True)
    error_pages: dict = option({}, "error status -> URL path of the default site's page for it, served with that "
                               "status", parse=error_page_table, site=True)
    try_files: tuple = option((), "URL paths the default site tries in order ($uri: the request's; a trailing /: a "
                              "directory with an index); the first that exists answers, else the last: a path, or "
                              "=STATUS", check=try_files_problem, site=True)
    location: tuple = option((), "[[location]] tables of the default site: prefix, headers, redirect, status, "
                             "try_files", tables=parse_locations, flag=False)
    site: tuple = option((), "[[site]] tables: more sites on the same addresses, chosen by the request's Host "
                         "(server_names), each with its own file options, headers, error_pages, try_files and "
                         "[[site.location]]", flag=False)
    default_site: str = option("serve", "a request whose Host names no [[site]]: serve (the top-level options "
                               "answer) or refuse (421 Misdirected Request, then close)",
                               check=one_of(("serve", "refuse")))
    # mounted code
    mount: dict = option({}, "URL prefix -> Python callable answering under it: a handler(request) or a WSGI "
                         "app(environ, start_response), imported in each worker")
    python_path: tuple = option((), "directories put on sys.path (before the current one) to import mounts from",
                                path=())
    health_path: str = option("/healthz", "URL path answering 200 while the worker loop runs (liveness probe); "
                              "empty disables it")
    ready_path: str = option("/readyz", "URL path answering 200 while the instance takes new work, 503 once a "
                             "graceful stop or WINCH begins (readiness probe); empty disables it")
    threads: int = option(1, "threads per worker running mounted code; 1 runs it in the worker's event loop",
                          check=in_range(1, MAX_THREADS))
    max_pending: int = option(0, "requests for mounted code waiting for a thread, per worker, beyond which it "
                              f"answers 503; 0 is {PENDING_PER_THREAD} x threads", check=non_negative)
    # processes
    workers: int = option(os.cpu_count() or 1, f"number of worker processes (at most {MAX_WORKERS})",
                          check=in_range(1, MAX_WORKERS))
    user: str = option("", "user the workers run as (when started as root)")
    group: str = option("", "group the workers run as (when started as root)")
    pid_file: str = option("", "write the master's pid to this file", path=())
    graceful_timeout: float = option(30.0, "longest a graceful stop waits for in-flight work", check=positive,
                                     unit="s")
    shutdown_delay: float = option(0.0, "on a graceful stop, serve on this long (ready_path answering 503, so "
                                   "balancers stop sending new work) before closing the listening sockets",
                                   check=non_negative, unit="s")
    worker_timeout: float = option(30.0, "a worker silent for this long is killed and replaced", check=positive,
                                   unit="s")
    # timeouts and limits
    header_timeout: float = option(10.0, "time allowed to receive a whole request head, or the rest of a "
                                   "request body (then 408)", check=positive, unit="s")
    keepalive_timeout: float = option(15.0, "idle keep-alive connections are closed after this",
                                      check=positive, unit="s")
    send_timeout: float = option(60.0, "a client that reads nothing for this long is dropped", check=positive,
                                 unit="s")
    max_request_line: int = option(8192, "longest request line (then 414)", check=positive, unit="bytes")
    max_header_bytes: int = option(16384, "largest request head (then 431)", check=positive, unit="bytes")
    max_header_fields: int = option(100, "most header fields in a request (then 431)", check=positive)
    max_body_bytes: int = option(1048576, "largest request body (then 413): held in memory for a mounted "
                                 "handler, read and discarded for a static file", check=non_negative, unit="bytes")
    max_connections: int = option(10000, "connections per worker; when full the worker stops accepting",
                                  check=positive)
    limit_conn_per_ip: int = option(0, "simultaneous connections per client address, all workers together; "
                                    "beyond it 503 and close (nginx's limit_conn); 0 is no limit", check=non_negative)
    limit_req_per_ip: float = option(0.0, "requests per second per client address, all workers together; beyond "
                                     "it and limit_req_burst 429 with Retry-After (nginx's limit_req nodelay); 0 is "
                                     "no limit", check=non_negative)
    limit_req_burst: int = option(0, "requests a client may make at once beyond limit_req_per_ip (nginx's burst)",
                                  check=non_negative)
    max_ranges: int = option(16, "most ranges served in one multipart response", check=positive)
    send_quota: int = option(2097152, "bytes sent to one connection per loop turn (fairness)", check=positive,
                             unit="bytes")
    # caches
    open_file_cache_valid: float = option(1.0, "seconds a cached file lookup (a 404 too) stays valid",
                                          check=non_negative, unit="s")
    small_file_max: int = option(65536, "files up to this size are kept in memory", check=non_negative,
                                 unit="bytes")
    small_file_cache_bytes: int = option(16 * 1048576, "memory for cached small files per worker",
                                         check=non_negative, unit="bytes")
    # logging and status
    log_level: str = option("info", "error log level: debug, info, warning, error",
                            check=one_of(LOG_LEVELS))
    error_log: str = option("-", "error log file; - is stderr", path=("-",))
    access_log: str = option("off", "access log file; - is stdout, off disables it", path=("-", "off"))
    access_log_format: str = option(
        '$remote_addr - - [$time_local] "$request" $status $body_bytes_sent "$http_referer" '
        '"$http_user_agent" $request_time',
        "access log line built from named fields ($remote_addr, $remote_port, $realip_remote_addr (the peer "
        "when the client came through a trusted proxy), $time_local, $time_iso8601, "
        "$request, $request_method, $request_uri, $status, $body_bytes_sent, $bytes_sent, $request_time, "
        "$request_completion, $pid, $host (the host the request names), $site (the site answering it), $scheme, "
        "$ssl_protocol, $ssl_cipher, $ssl_session_reused, and $http_<header> such as $http_referer, "
        "$http_user_agent)")
    status_path: str = option("", "URL path of the live status page (JSON; Prometheus with ?format=prometheus "
                              "or Accept: text/plain), e.g. /server-status; empty disables it")
    status_allow: tuple = option(("127.0.0.1", "::1"), "client addresses or CIDR networks allowed to read the "
                                 "status page (others get 403)", check=ip_networks)
    # behind load balancers
    real_ip_from: tuple = option((), "addresses or CIDR networks of trusted proxies: their real_ip_header names "
                                 "the client (nginx's set_real_ip_from)", check=ip_networks)
    real_ip_header: str = option("X-Forwarded-For", "where a trusted proxy names the client: X-Forwarded-For, "
                                 "Forwarded (RFC 7239), another header listing addresses, or proxy_protocol (the "
                                 "PROXY header alone)", check=header_name)
    proxy_protocol: bool = option(False, "every connection starts with a PROXY protocol header (v1 or v2), "
                                  "accepted from real_ip_from peers only; its source address is the client")
    proxy_protocol_timeout: float = option(5.0, "time allowed for a connection's PROXY header (then it is closed)",
                                           check=positive, unit="s")

    @property
    def header_real_ip(self):
        """Do trusted peers name clients in an HTTP header (rather than in the PROXY header alone)?"""
        return bool(self.real_ip_from) and self.real_ip_header.lower() != PROXY_PROTOCOL
    # TLS (README "TLS")
    tls_port: int = option(0, "port to listen on with TLS (HTTPS) on every bind address, beside port; 0 is off",
                           check=in_range(0, 65535))
    tls_certificate: str = option("", "PEM certificate file of the TLS port (the chain may follow it in the file)",
                                  path=())
    tls_certificate_key: str = option("", "PEM private key file of tls_certificate; empty: the key is in the "
                                      "certificate file", path=())
    tls_sni: tuple = option((), "more certificates, chosen by the name the client asks for (SNI): [[tls_sni]] "
                            "tables with server_names, certificate, certificate_key (config file only)",
                            tables=sni_certificates, flag=False)
    tls_protocols: tuple = option(TLS_PROTOCOLS, "TLS versions offered (TLSv1.2, TLSv1.3)",
                                  check=all_of(TLS_PROTOCOLS))
    tls_ciphers: str = option(MOZILLA_INTERMEDIATE_CIPHERS, "OpenSSL cipher list for TLS 1.2 (TLS 1.3 uses "
                              "OpenSSL's own suites); default: Mozilla intermediate, ECDHE")
    redirect_to_https: bool = option(False, "the plain port answers every request with a 301 to the same URL on "
                                     "the TLS port (status_path, health_path and ready_path excepted)")
    hsts_max_age: int = option(-1, "Strict-Transport-Security max-age sent with TLS responses; -1 sends none",
                               check=at_least(-1), unit="s")

    @property
    def pending_limit(self):
        """Requests for mounted code a worker holds (running and waiting) before it answers 503."""
        return self.threads + (self.max_pending or PENDING_PER_THREAD * self.threads)

    @property
    def listen_addresses(self):
        """Every (address, port) to bind: the plain port, then the TLS port, on each bind address."""
        ports = (self.port, self.tls_port) if self.tls_port else (self.port,)
        return [(address, port) for port in ports for address in self.bind]


FIELDS = {f.name: f for f in dataclasses.fields(Config)}
LOCATION_FIELDS = {f.name: f for f in dataclasses.fields(LocationConfig)}
SITE_KEYS = ("server_names", "location", *(name for name, f in FIELDS.items() if f.metadata["site"]))


def field_type(name):
    """The Python type an option's value must have (bool is not an int here, int is accepted for float)."""
    return FIELDS[name].type


def coerce(name, value, fields=FIELDS, where=""):
    """Check one option's value against its type and rule; return it in canonical form. `where` names the table
    it is in, for errors ("site[1].")."""
    spec = fields[name]
    key = where + name
    expected = spec.type
    if spec.metadata["tables"] is not None:
        if not isinstance(value, (list, tuple)) or \
                not all(isinstance(v, dict) or dataclasses.is_dataclass(v) for v in value):
            raise ConfigError(f"{key}: expected an array of tables ([[{name}]]), got {value!r}")
        return spec.metadata["tables"](value, key)
    if expected is tuple:
        if isinstance(value, str):
            value = (value,)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a string or a list of strings, got {value!r}")
        value = tuple(value)
    elif expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    elif (expected is int and isinstance(value, bool)) or not isinstance(value, expected):
        raise ConfigError(f"{key}: expected {expected.__name__}, got {value!r}")
    if spec.metadata["parse"] is not None:
        try:
            value = spec.metadata["parse"](value)
        except ValueError as e:
            raise ConfigError(f"{key}: {e}") from None
    check = spec.metadata["check"]
    problem = check and check(value)
    if problem:
        raise ConfigError(f"{key}: {problem}")
    return value


def checked_table(table, fields, where, allowed=None):
    """A table's values coerced, each error naming `where` and the key; unknown keys are errors."""
    allowed = fields.keys() if allowed is None else allowed
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}{key}: unknown option here (allowed: {', '.join(allowed)})")
    return {name: coerce(name, value, fields, where) for name, value in table.items()}


def table_entries(name, table, value):
    """A list of TOML tables as a tuple of `table` dataclasses: each key known, each value a string (a list of
    strings for a tuple field), the fields without a default present."""
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{name}: expected a list of tables ([[{name}]]), got {value!r}")
    fields = {f.name: f for f in dataclasses.fields(table)}
    required = [f.name for f in fields.values() if f.default is dataclasses.MISSING]
    entries = []
    for entry in value:
        if isinstance(entry, table):
            entries.append(entry)
            continue
        if not isinstance(entry, dict):
            raise ConfigError(f"{name}: expected a table, got {entry!r}")
        unknown = entry.keys() - fields.keys()
        missing = [key for key in required if not entry.get(key)]
        if unknown or missing:
            raise ConfigError(f"{name}: {'unknown key ' + min(unknown) if unknown else 'missing ' + missing[0]} "
                              f"in {entry!r}")
        values = {}
        for key, item in entry.items():
            if fields[key].type is tuple:
                item = (item,) if isinstance(item, str) else item
                if not isinstance(item, (list, tuple)) or not all(isinstance(v, str) for v in item):
                    raise ConfigError(f"{name}: {key}: expected a string or a list of strings, got {item!r}")
                item = tuple(item)
            elif not isinstance(item, str):
                raise ConfigError(f"{name}: {key}: expected a string, got {item!r}")
            values[key] = item
        entries.append(table(**values))
    return tuple(entries)


def read_config_file(path):
    """The options set in a TOML file, as a dict, relative paths taken from the file's directory; unknown keys
    are errors."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"config file {path}: cannot read it: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: {e}") from None
    for key in data:
        if key not in FIELDS:
            raise ConfigError(f"{key}: unknown option in config file {path}")
    return with_paths_from(os.path.dirname(os.path.abspath(path)), data)


def with_paths_from(directory, table):
    """A config file's table (the file's top level, a [[site]]) with the relative paths of its path options made
    absolute from `directory`; any other value as it is (coerce judges it)."""
    return {name: from_directory(directory, name, value) if name in FIELDS else value
            for name, value in table.items()}


def from_directory(directory, name, value):
    """A config file's value for option `name`, its relative paths (if it is a path option, in the tables of
    [[site]], or a [[tls_sni]] table's path key) made absolute from `directory`; any other value as it is."""
    if name == "site" and isinstance(value, list):
        return [with_paths_from(directory, table) if isinstance(table, dict) else table for table in value]
    if name == "tls_sni" and isinstance(value, list):
        return [{key: from_path(directory, item, ()) if key in SniCertificate.PATHS else item
                 for key, item in entry.items()} if isinstance(entry, dict) else entry for entry in value]
    names_no_file = FIELDS[name].metadata["path"]
    if names_no_file is None:
        return value
    if isinstance(value, list):
        return [from_path(directory, item, names_no_file) for item in value]
    return from_path(directory, value, names_no_file)


def from_path(directory, value, names_no_file):
    """A relative path made absolute from `directory`; an absolute one, or a value naming no file, unchanged."""
    if isinstance(value, str) and value and value not in names_no_file:
        return os.path.normpath(os.path.join(directory, value))
    return value


def build_config(config_file=None, overrides=None):
    """Defaults, then the config file, then explicit overrides (command-line flags); validated. The [[site]]
    tables start from the result."""
    values = {}
    if config_file:
        values.update(read_config_file(config_file))
    values.update(overrides or {})
    site_tables = values.pop("site", [])
    checked = {name: coerce(name, value) for name, value in values.items()}
    config = Config(**checked)
    validate(config)
    if not isinstance(site_tables, list) or not all(isinstance(table, dict) for table in site_tables):
        raise ConfigError(f"site: expected an array of tables ([[site]]), got {site_tables!r}")
    sites = []
    for i, table in enumerate(site_tables):
        sites.append(site_config(config, table, f"site[{i}].", sites))
    return dataclasses.replace(config, site=tuple(sites))


def site_config(top, table, where, earlier):
    """A [[site]] table as a SiteConfig: the top-level options with the site's own in their place (headers
    merged by name); its locations are its own. A server name may belong to one site only."""
    options = {key: value for key, value in table.items() if key != "server_names"}
    values = checked_table(options, FIELDS, where, SITE_KEYS)
    names = server_names(table.get("server_names"), where)
    for name in names:
        for i, other in enumerate(earlier):
            if name in other.server_names:
                raise ConfigError(f"{where}server_names: {name!r} is already site[{i}]'s")
    if "headers" in values:
        values["headers"] = merge_headers(top.headers, values["headers"])
    config = dataclasses.replace(top, **{"location": (), **values})
    validate_files(config, where)
    return SiteConfig(names, config)


def server_names(names, where):
    """A site's server names, lower-case and without a trailing dot: host names, *.wildcards, IP addresses."""
    if isinstance(names, str):
        names = [names]
    if not names or not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ConfigError(f"{where}server_names: a site needs a list of host names, got {names!r}")
    canonical = []
    for name in names:
        if SERVER_NAME.fullmatch(name.lower().rstrip(".")) is None:
            raise ConfigError(f"{where}server_names: {name!r} is not a host name, *.name or IP address (the "
                              "Host's port is ignored: name none)")
        canonical.append(name.lower().rstrip("."))
    if len(set(canonical)) < len(canonical):
        raise ConfigError(f"{where}server_names: a name is given twice")
    return tuple(canonical)


def validate(config):
    """Cross-field and filesystem checks that make a config usable."""
    validate_files(config)
    for name in ("status_path", "health_path", "ready_path"):
        path = getattr(config, name)
        if path and not path.startswith("/"):
            raise ConfigError(f"{name}: {path!r} must start with /")
    check_mounts(config.mount)
    if config.proxy_protocol and not config.real_ip_from:
        raise ConfigError("proxy_protocol: PROXY headers are accepted from real_ip_from peers only, and it is empty")
    if config.real_ip_header.lower() == PROXY_PROTOCOL and not config.proxy_protocol:
        raise ConfigError("real_ip_header: proxy_protocol needs proxy_protocol = true")
    try:
        check_access_format(config.access_log_format)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if config.access_log not in ("off", "-"):
        check_writable("access_log", config.access_log)
    if not config.bind:
        raise ConfigError("bind: at least one address is needed")
    check_account(config.user, config.group)
    check_tls(config)


def check_tls(config):
    """The TLS options fit together (the files themselves are loaded by net/tls.py)."""
    if config.tls_port and config.tls_port == config.port:
        raise ConfigError(f"tls_port: {config.tls_port} is also the plain port")
    if config.tls_port and not config.tls_certificate:
        raise ConfigError("tls_certificate: needed with tls_port")
    if config.redirect_to_https and not config.tls_port:
        raise ConfigError("redirect_to_https: needs tls_port")
    for entry in config.tls_sni:
        for server_name in entry.server_names:
            if TLS_SERVER_NAME.fullmatch(server_name.lower()) is None:
                raise ConfigError(f"tls_sni: {server_name!r} is not a host name or *.domain")


def validate_files(config, where=""):
    """The checks of a site's file options (the top level's, or a [[site]]'s, named by `where`)."""
    if not os.path.isdir(config.root):
        raise ConfigError(f"{where}root: {config.root!r} is not a directory")
    if not os.access(config.root, os.R_OK | os.X_OK):
        raise ConfigError(f"{where}root: {config.root!r} is not readable")
    for ext, age in config.cache_max_age_by_ext.items():
        if not isinstance(age, int) or isinstance(age, bool) or age < 0:
            raise ConfigError(f"{where}cache_max_age_by_ext: {ext}: {age!r} is not an integer >= 0")


def check_mounts(mounts):
    """Each mount is a prefix ("/api") and a "module:callable" name; importing them is the workers' job."""
    seen = set()
    for prefix, spec in mounts.items():
        problem = url_prefix_problem(prefix)
        if problem:
            raise ConfigError(f"mount: {problem}")
        if not isinstance(spec, str) or MOUNT_SPEC.fullmatch(spec) is None:
            raise ConfigError(f"mount: {prefix}: expected \"module:callable\", got {spec!r}")
        if mount_prefix(prefix) in seen:
            raise ConfigError(f"mount: {prefix!r} is mounted twice")
        seen.add(mount_prefix(prefix))


def mount_prefix(prefix):
    """A configured prefix in matching form: "/api/" and "/api" are "/api", and "/" is ""."""
    return prefix.rstrip("/")


def check_writable(name, path):
    """A log file must be writable, or creatable in an existing writable directory."""
    target = path if os.path.exists(path) else os.path.dirname(os.path.abspath(path))
    if not os.access(target, os.W_OK):
        raise ConfigError(f"{name}: cannot write to {path!r}")


def check_account(user, group):
    """The user and the group the workers run as must exist."""
    for name, value, lookup in (("user", user, pwd.getpwnam), ("group", group, grp.getgrnam)):
        if value:
            try:
                lookup(value)
            except KeyError:
                raise ConfigError(f"{name}: no such {name} {value!r}") from None
