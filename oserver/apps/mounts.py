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
from oserver.prefixes import PrefixTable

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
    """The mounts of one worker: `route(raw_path)` is the Route of the longest matching prefix, or None."""

    def __init__(self, mounts):
        self.mounts = mounts
        self.table = PrefixTable([(mount.prefix, mount) for mount in mounts],
                                 lambda prefix, mount, path: Route(mount, path, path[len(prefix):]))
        self.route = self.table.match


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
