"""URL prefixes as mounts and site locations match them: the longest prefix of the decoded, normalised path,
segment-wise (/api takes /api and /api/..., never /apix), with a bounded cache by raw path. Pure."""

from oserver.files.static import url_path_to_segments
from oserver.memo import Memo

MAX_CACHED_MATCHES = 4096


def normalised_path(raw_path):
    """The decoded, normalised form of a raw URL path ("/a/./b/../c/" is "/a/c/"); 400 above the root."""
    segments = url_path_to_segments(raw_path, serve_dotfiles=True)
    return "/" + "/".join(segments) + ("/" if segments and raw_path.endswith("/") else "")


class PrefixTable:
    """Values by URL prefix. `match(raw_path)` answers `build(prefix, value, path)` for the longest prefix
    matching the path (`prefix` in matching form: no trailing slash, "" for "/"), or None."""

    def __init__(self, entries, build):
        self.entries = sorted(((prefix.rstrip("/"), value) for prefix, value in entries), key=lambda e: -len(e[0]))
        self.build = build
        self.match = Memo(self.find, MAX_CACHED_MATCHES).__getitem__

    def find(self, raw_path):
        if raw_path is None:  # OPTIONS * and CONNECT name no path
            return None
        path = normalised_path(raw_path)
        for prefix, value in self.entries:
            if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
                return self.build(prefix, value, path)
        return None
