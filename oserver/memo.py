"""Bounded memos: answers remembered by key in a dict that is emptied when it is full, so that keys a client
chooses (paths, host names, header values, addresses) cannot grow it. Pure; a dict's get and set are atomic, so
a thread pool may share one."""


def remember(cache, key, value, limit):
    """Store `value` in the bounded cache (emptied when it holds `limit` keys) and return it."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
    return value


class Memo(dict):
    """What `compute(key)` answered for each key asked, a plain dict lookup once known; emptied when it holds
    `limit` keys."""

    def __init__(self, compute, limit):
        super().__init__()
        self.compute = compute
        self.limit = limit

    def __missing__(self, key):
        return remember(self, key, self.compute(key), self.limit)
