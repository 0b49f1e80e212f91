"""Directory listings (autoindex): the HTML page for one directory, from entries static.py has read.

Pure: it formats the names, sizes and times it is given. Names are HTML-escaped and URL-quoted, directories
come first, and dot-files (or names that are not UTF-8, which no URL can reach) never appear.
"""

import html
import time
from dataclasses import dataclass
from urllib.parse import quote

TIME_FORMAT = "%Y-%m-%d %H:%M"  # UTC
PAGE = """<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>Index of {title}</title></head>
<body>
<h1>Index of {title}</h1>
<table>
<tr><th>Name</th><th>Last modified</th><th>Size</th></tr>
{rows}
</table>
</body>
</html>
"""
ROW = '<tr><td><a href="{href}">{name}</a></td><td>{mtime}</td><td>{size}</td></tr>'
PARENT_ROW = ROW.format(href="../", name="../", mtime="", size="-")


@dataclass(slots=True, frozen=True)
class DirectoryEntry:
    """One name in a directory: is it a directory, its size in bytes and modification time (epoch seconds)."""

    name: str
    is_dir: bool
    size: int
    mtime: float


def is_listed(name):
    """Dot-files are never listed; nor are names that are not valid UTF-8 (os.fsdecode's surrogates)."""
    if name.startswith("."):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def listing_row(entry):
    slash = "/" if entry.is_dir else ""
    return ROW.format(href=quote(entry.name, safe="") + slash, name=html.escape(entry.name + slash),
                      mtime=time.strftime(TIME_FORMAT, time.gmtime(entry.mtime)),
                      size="-" if entry.is_dir else entry.size)


def listing_page(url_path, entries):
    """The UTF-8 HTML listing of the directory at decoded `url_path` (ending in "/"): a parent link unless
    it is the root, then directories, then files, each sorted by name."""
    shown = sorted((e for e in entries if is_listed(e.name)), key=lambda e: (not e.is_dir, e.name))
    rows = ([] if url_path == "/" else [PARENT_ROW]) + [listing_row(e) for e in shown]
    return PAGE.format(title=html.escape(url_path), rows="\n".join(rows)).encode("utf-8")
