"""The router: for a parsed request, which responder answers it. A pure decision, in this order: the status
page, the health and readiness probes, the per-client request limit, mounted code (the longest matching
prefix), all server-wide; else the site the request names (sites.py), which answers from its static files.

Returns a Reply, or the Route of mounted code (which the protocol hands to the executor once the request's
body is in).
"""

from oserver.status import health_reply, ready_reply


class Router:
    def __init__(self, config, sites, status_page, mounts, ready, limit_request=None):
        self.status_path = config.status_path  # "" (off) never equals a request path
        self.health_path = config.health_path
        self.ready_path = config.ready_path
        self.ready = ready  # () -> does this instance take new work?
        self.limit_request = limit_request  # (client) -> None, or the reply refusing its request (limit_req)
        self.status = status_page
        self.mounts = mounts  # a MountTable, or None when nothing is mounted
        # the request's site answers; with one site adding nothing to its files, this is their own respond()
        self.site_respond = sites.respond

    def route(self, request, client):
        path = request.path
        if path == self.status_path:
            return self.status.respond(request, client)
        if path == self.health_path:
            return health_reply(request)
        if path == self.ready_path:
            return ready_reply(request, self.ready())
        if self.limit_request is not None and (refusal := self.limit_request(client)) is not None:
            return refusal
        if self.mounts is not None and (route := self.mounts.route(path)) is not None:
            return route
        return self.site_respond(request)
