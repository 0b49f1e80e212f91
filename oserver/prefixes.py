"""URL prefixes as mounts and site locations match them: the longest prefix of the decoded, normalised path,
segment-wise (/api takes /api and /api/..., never /apix), with a bounded cache by raw path. Pure."""

from oserver.files.static import url_path_to_segments

MAX_CACHED_MATCHES = 4096


def normalised_path(raw_path):
    """The decoded, normalised form of a raw URL path ("/a/./b/../c/" is "/a/c/"); 400 above the root."""
    segments = url_path_to_segments(raw_path, serve_dotfiles=True)
    return "/" + "/".join(segments) + ("/" if segments and raw_path.endswith("/") else "")


class Memo(dict):
    """What `compute(key)` answered for each key asked, a plain dict lookup once known; cleared when it holds
    `limit` keys (so hostile keys cannot grow it)."""

    def __init__(self, compute, limit=MAX_CACHED_MATCHES):
        super().__init__()
        self.compute = compute
        self.limit = limit

    def __missing__(self, key):
        if len(self) >= self.limit:
            self.clear()
        value = self[key] = self.compute(key)
        return value


class PrefixTable:
    """Values by URL prefix. `match(raw_path)` answers `build(prefix, value, path)` for the longest prefix
    matching the path (`prefix` in matching form: no trailing slash, "" for "/"), or None."""

    def __init__(self, entries, build):
        self.entries = sorted(((prefix.rstrip("/"), value) for prefix, value in entries), key=lambda e: -len(e[0]))
        self.build = build
        self.match = Memo(self.find).__getitem__

    def find(self, raw_path):
        if raw_path is None:  # OPTIONS * and CONNECT name no path
            return None
        path = normalised_path(raw_path)
        for prefix, value in self.entries:
            if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
                return self.build(prefix, value, path)
        return None
