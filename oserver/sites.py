"""Sites: which site answers a request (by the host it names: exact server names, then *.wildcards, then the
default site, or 421), and what a site adds to its static files: locations (the longest prefix: header fields,
a redirect, try_files), try_files, error pages and response header fields. Pure decisions over StaticFiles
(one per site); never touches a socket.
"""

from dataclasses import dataclass
from urllib.parse import quote

from oserver.config import merge_headers
from oserver.files.static import StaticFiles, slash_redirect
from oserver.http.parser import METHODS_SERVED
from oserver.http.response import (ALLOW_FIELD, ERROR_BODIES, Reply, error_extra_fields, error_fields, error_reply,
                                   redirect_reply)
from oserver.memo import Memo
from oserver.prefixes import PrefixTable

MAX_CACHED_HOSTS = 4096  # host names answered by a wildcard or the default site, remembered
MAX_CACHED_FIELDS = 1024  # responses' field bytes rewritten by one HeaderPlan, remembered
DEFAULT_SITE = "default"  # $site of the site the top-level options make
NO_SITE = "-"  # $site of a request no site answered (default_site = "refuse")
REFUSED = Reply(421, error_fields(421), ERROR_BODIES[421], keep_alive=False)
PATH_DELIMITERS = "/:@!$&'()*+,;="  # RFC 3986 pchar delimiters: kept as they are when a path is re-encoded


class SiteTable:
    """The sites of one worker. `respond(request)` answers through the request's site: when the default site is
    the only one, it is that site's own respond(), which is its StaticFiles' own when the site adds nothing to
    them (no lookup, no layer). `name(request)` is the answering site's name ($site)."""

    def __init__(self, config):
        self.default = None if config.default_site == "refuse" else Site(DEFAULT_SITE, config)
        self.exact = {}
        wildcards = []
        for site_config in config.site:
            site = Site(site_config.server_names[0], site_config.config)
            for name in site_config.server_names:
                if name.startswith("*."):
                    wildcards.append((name[1:], site))
                else:
                    self.exact[name] = site
        self.wildcards = sorted(wildcards, key=lambda wildcard: -len(wildcard[0]))  # the longest wins (nginx)
        self.chosen = Memo(self.by_wildcard, MAX_CACHED_HOSTS)  # other names -> a wildcard's site, the default
        if not config.site and self.default is not None:
            self.respond = self.default.respond

    def select(self, request):
        """The Site answering a request (None: refused). An exact name is one dict hit; other names are looked
        up once, then remembered."""
        site = self.exact.get(request.host)
        return self.chosen[request.host] if site is None else site

    def by_wildcard(self, host):
        """The site of the longest *.suffix the host ends with (any number of labels before it), else the
        default site."""
        for suffix, site in self.wildcards:
            if host.endswith(suffix) and len(host) > len(suffix):
                return site
        return self.default

    def respond(self, request):
        site = self.select(request)
        if site is None:
            return REFUSED
        return site.respond(request)

    def name(self, request):
        site = self.select(request)
        return NO_SITE if site is None else site.name


class HeaderPlan:
    """The header fields a site (or a location) puts on every response: `added` (field lines), in place of a
    response's own fields of the `names` it sets or removes (lower-case). A response's field bytes are rewritten
    once, then remembered: a file's replies share theirs."""

    def __init__(self, headers):
        self.names = frozenset(name.lower().encode("latin-1") for name in headers)
        self.markers = tuple(b"\n" + name + b":" for name in self.names)  # found in b"\n" + lower-cased fields
        self.added = b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in headers.items() if value)
        self.rewritten = Memo(self.rewrite, MAX_CACHED_FIELDS)

    def apply(self, reply):
        return Reply(reply.status, self.rewritten[reply.fields], reply.data, reply.parts, reply.line,
                     reply.keep_alive)

    def rewrite(self, fields):
        lowered = b"\n" + fields.lower()
        if any(marker in lowered for marker in self.markers):
            fields = b"".join(line + b"\r\n" for line in fields.split(b"\r\n")
                              if line and line.partition(b":")[0].lower() not in self.names)
        return fields + self.added


def header_plan(headers):
    """The HeaderPlan of {name: value} (an empty value removes the field), or None for no fields."""
    return HeaderPlan(headers) if headers else None


@dataclass(slots=True, frozen=True, eq=False)
class TryFiles:
    """nginx's try_files: URL path templates ($uri the request's path) tried in order, each with whether it
    names a directory (a trailing /); then the `fallback` path, or the `status` answered instead."""

    tried: tuple
    fallback: str
    status: int


def try_files_plan(entries):
    if not entries:
        return None
    *tried, last = entries
    tried = tuple((template, template.endswith("/")) for template in tried)
    if last.startswith("="):
        return TryFiles(tried, "", int(last[1:]))
    return TryFiles(tried, last, 0)


@dataclass(slots=True, frozen=True, eq=False)
class Rules:
    """What applies to a path of a site: header fields, try_files, a redirect (its target and status)."""

    headers: object  # a HeaderPlan, or None
    try_files: TryFiles | None
    redirect: str = ""
    status: int = 301

    def redirect_reply(self, rest, query):
        """The redirect, with `rest` (the decoded path below the location's prefix, encoded again) appended to
        the target's path, and the query to the target's own query; the target's #fragment stays last."""
        target, hash_mark, fragment = self.redirect.partition("#")
        target, _, target_query = target.partition("?")
        if rest:
            rest = quote(rest, safe=PATH_DELIMITERS)
            if target.endswith("/") and rest.startswith("/"):
                rest = rest[1:]
        query = "&".join(part for part in (target_query, query) if part)
        return redirect_reply(target + rest + ("?" if query else "") + query + hash_mark + fragment, self.status)


class Site:
    """One site: its static files and rules. `respond(request)` is the static files' own when the site adds
    nothing to them."""

    def __init__(self, name, config):
        self.name = name
        self.static = StaticFiles(config)
        self.error_pages = config.error_pages
        self.rules = Rules(header_plan(config.headers), try_files_plan(config.try_files))
        self.locations = None
        if config.location:
            self.locations = PrefixTable([(location.prefix, location_rules(location, config))
                                          for location in config.location],
                                         lambda prefix, rules, path: (rules, path[len(prefix):]))
        if not (config.headers or config.error_pages or config.try_files or config.location):
            self.respond = self.static.respond

    def respond(self, request):
        """The reply of the rules of the request's location (or the site's): a redirect, try_files or the
        file; an error reply becomes the site's page for its status; then the header fields."""
        rules, rest = self.rules, ""
        if self.locations is not None:
            rules, rest = self.locations.match(request.path) or (rules, rest)
        if rules.redirect:
            reply = rules.redirect_reply(rest, request.query)
        elif rules.try_files is not None:
            reply = self.try_files(request, rules.try_files)
        else:
            reply = self.static.respond(request)
        if reply.status in self.error_pages:
            reply = self.error_page(reply)
        return reply if rules.headers is None else rules.headers.apply(reply)

    def try_files(self, request, plan):
        """The first tried path that names a file (or, ending in /, a directory with an index or a listing)
        answers the request, the request's own directory after a 301 adding its slash; else the fallback path
        answers, or the fallback status."""
        if request.method not in METHODS_SERVED:
            return error_reply(405, ALLOW_FIELD)
        path, static = request.path, self.static
        for template, directory in plan.tried:
            candidate = template.replace("$uri", path)
            found = static.lookup(candidate, request.query)
            if found.__class__ is not Reply or found.status == 200:
                if directory and candidate == path + "/" and not path.endswith("/"):
                    return slash_redirect(path, request.query)
                return static.respond(request, candidate)
        if plan.status:
            return error_reply(plan.status)
        return static.respond(request, plan.fallback.replace("$uri", path))

    def error_page(self, reply):
        """The site's page for an error reply, with its status and its extra fields (Allow, Content-Range...).
        A page that is missing leaves the built-in reply: an error page never gets an error page (no loop)."""
        extra = error_extra_fields(reply)
        page = self.static.lookup(self.error_pages[reply.status])
        if extra is None or page.__class__ is Reply:
            return reply
        fields = b"%sContent-Length: %d\r\n%s" % (page.type_line, page.size, extra)
        if page.data is not None:
            return Reply(reply.status, fields, page.data, keep_alive=reply.keep_alive)
        return Reply(reply.status, fields, parts=(page.span(0, page.size - 1),), keep_alive=reply.keep_alive)


def location_rules(location, config):
    """A location's Rules: its header fields merged into the site's, its try_files or the site's."""
    try_files = config.try_files if location.try_files is None else location.try_files
    return Rules(header_plan(merge_headers(config.headers, location.headers)), try_files_plan(try_files),
                 location.redirect, location.status)
