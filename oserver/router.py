"""The router: for a parsed request, which responder answers it. A pure decision, in this order: the status
page, the health and readiness probes, the redirect of plain HTTP to HTTPS (redirect_to_https), the per-client
request limit, mounted code (the longest matching prefix), all server-wide; else the site the request names
(sites.py), which answers from its static files.

Returns a Reply, or the Route of mounted code (which the protocol hands to the executor once the request's
body is in).
"""

from oserver.http.response import error_reply, redirect_reply
from oserver.status import health_reply, ready_reply

HTTPS_DEFAULT_PORT = 443


class Router:
    def __init__(self, config, sites, status_page, mounts, ready, limit_request=None):
        self.status_path = config.status_path  # "" (off) never equals a request path
        self.health_path = config.health_path
        self.ready_path = config.ready_path
        self.ready = ready  # () -> does this instance take new work?
        self.limit_request = limit_request  # (client) -> None, or the reply refusing its request (limit_req)
        self.https_port = config.tls_port if config.redirect_to_https else None
        self.status = status_page
        self.mounts = mounts  # a MountTable, or None when nothing is mounted
        # the request's site answers; with one site adding nothing to its files, this is their own respond()
        self.site_respond = sites.respond

    def route(self, request, client, secure=False):
        """The answer to `request` from `client`, which came over TLS when `secure`."""
        path = request.path
        if path == self.status_path:
            return self.status.respond(request, client)
        if path == self.health_path:
            return health_reply(request)
        if path == self.ready_path:
            return ready_reply(request, self.ready())
        if self.https_port is not None and not secure:
            return https_redirect(request, self.https_port)
        if self.limit_request is not None and (refusal := self.limit_request(client)) is not None:
            return refusal
        if self.mounts is not None and (route := self.mounts.route(path)) is not None:
            return route
        return self.site_respond(request)


def https_redirect(request, port):
    """301 to the same host, path and query on the TLS port; 400 without a Host to name (HTTP/1.0)."""
    host = request.headers.get("host", "")
    host = host[:host.find("]") + 1] if host.startswith("[") else host.partition(":")[0]
    if not host:
        return error_reply(400)
    authority = host if port == HTTPS_DEFAULT_PORT else f"{host}:{port}"
    target = (request.path or "/") + ("?" + request.query if request.query else "")
    return redirect_reply(f"https://{authority}{target}")
