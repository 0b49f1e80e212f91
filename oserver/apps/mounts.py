"""Mounted code: the [mount] table (URL prefix -> "module:callable"), imported in each worker, and routing.

A path belongs to the mount with the longest matching prefix, matched on the decoded, normalised path (as
nginx matches locations); the static files answer every other path. Loading imports user code, so it runs
in workers (after fork and the privilege drop) and in `-t`, never in the master: each reload imports afresh.
"""

import importlib
import inspect
import os
import sys
from dataclasses import dataclass

from oserver.config import mount_prefix
from oserver.apps.wsgi import WsgiApp
from oserver.files.static import url_path_to_segments

MAX_CACHED_ROUTES = 4096
POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class MountError(Exception):
    """Mounted code that cannot be loaded: names the mount and the reason."""


@dataclass(slots=True, frozen=True, eq=False)
class Mount:
    """One prefix and what answers under it: `handler(request)`, a WSGI app already adapted to that form."""

    prefix: str  # without its trailing slash: "" for "/"
    spec: str
    handler: object
    kind: str  # "handler" or "WSGI app", for the log


@dataclass(slots=True, frozen=True, eq=False)
class Route:
    """A request path routed to a mount: the normalised `path`, and `path_info`, the part below the prefix."""

    mount: Mount
    path: str
    path_info: str


class MountTable:
    """The mounts of one worker, longest prefix first, with a bounded cache of raw path -> Route or None."""

    def __init__(self, mounts):
        self.mounts = sorted(mounts, key=lambda m: -len(m.prefix))
        self.routes = {}

    def route(self, raw_path):
        """The Route of a raw (percent-encoded) URL path, or None when no mount claims it."""
        found = self.routes.get(raw_path, self)
        if found is self:
            if raw_path is None:  # OPTIONS * and CONNECT name no path
                return None
            found = self.find(raw_path)
            if len(self.routes) >= MAX_CACHED_ROUTES:
                self.routes.clear()
            self.routes[raw_path] = found
        return found

    def find(self, raw_path):
        segments = url_path_to_segments(raw_path, serve_dotfiles=True)  # 400 for a path above the root
        path = "/" + "/".join(segments) + ("/" if segments and raw_path.endswith("/") else "")
        for mount in self.mounts:
            prefix = mount.prefix
            if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
                return Route(mount, path, path[len(prefix):])
        return None


def load_mounts(config):
    """The MountTable of config.mount with each callable imported, or None when nothing is mounted."""
    if not config.mount:
        return None
    for directory in reversed((*config.python_path, os.getcwd())):
        directory = os.path.abspath(directory)
        if directory not in sys.path:
            sys.path.insert(0, directory)
    multithread = config.threads > 1
    return MountTable([load_mount(mount_prefix(prefix), prefix, spec, multithread)
                       for prefix, spec in config.mount.items()])


def load_mount(prefix, name, spec, multithread=False):
    module_name, _, attributes = spec.partition(":")
    try:
        target = importlib.import_module(module_name)
    except Exception as e:
        raise MountError(f"mount {name}: cannot import {module_name}: {type(e).__name__}: {e}") from e
    for attribute in attributes.split("."):
        try:
            target = getattr(target, attribute)
        except AttributeError:
            raise MountError(f"mount {name}: {module_name} has no {attributes}") from None
    kind = calling_convention(target)
    if kind is None:
        raise MountError(f"mount {name}: {spec} must be a callable taking (request) or (environ, start_response)")
    return Mount(prefix, spec, WsgiApp(target, multithread) if kind == "WSGI app" else target, kind)


def calling_convention(target):
    """"handler" for a callable of one required positional argument, "WSGI app" for two, else None."""
    if not callable(target):
        return None
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None
    required = [p for p in parameters if p.kind in POSITIONAL and p.default is p.empty]
    return {1: "handler", 2: "WSGI app"}.get(len(required))
