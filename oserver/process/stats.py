"""Counters shared by the workers and the master: one shared mmap (of a memfd) made before fork.

A header written only by the master (its start time, whether the instance is leaving, the per-client count
epoch, the totals and top paths of retired workers), then a slot per worker written only by that worker:
identity, heartbeat, connections, requests, bytes, responses by status class, limit refusals, TLS handshakes
(full, resumed, failed) and its most requested paths (space-saving counts in a fixed table); last, the
per-client table of limits.py, which every worker writes under a lock. Readers of the rest never lock:
updates of several fields that must be seen whole are framed by a version counter (a seqlock).
"""

import mmap
import os
import struct
import time
import zlib

TOP_PATHS = 32  # entries in a table of most requested paths (per worker, and for the retired ones)
PENDING_PATHS_MAX = 1024  # distinct paths a worker tallies before it publishes them to its table
PATH_BYTES = 242  # bytes of a path kept in the table; a longer path is kept truncated
# Native byte order ("="), as the memoryviews that update counters in place use it.
ENTRY = struct.Struct(f"=QIH{PATH_BYTES}s")  # hits, crc32 of the whole path, its whole length, its bytes
HITS = struct.Struct("=Q")
ENTRY_WORDS = ENTRY.size // HITS.size
TABLE_BYTES = TOP_PATHS * ENTRY.size
VERSION = struct.Struct("=Q")  # seqlock: odd while an update is being written
# Responses 1xx..5xx (their sum is the requests), bytes sent, then the per-client limits' counts: connections
# refused (limit_conn_per_ip), requests refused (limit_req_per_ip), clients the full table could not track;
# then TLS handshakes full / resumed / failed.
COUNTERS = struct.Struct("=5QQ3Q3Q")
BYTES_WORD = 5
LIMIT_COUNTERS = ("conn_refused", "req_refused", "untracked")
LIMIT_WORDS = {name: BYTES_WORD + 1 + i for i, name in enumerate(LIMIT_COUNTERS)}
HANDSHAKE_FULL, HANDSHAKE_RESUMED, HANDSHAKE_FAILED = 9, 10, 11  # their words
HANDSHAKE_RESULTS = ("full", "resumed", "failed")
READ_DEADLINE = 0.05  # seconds a reader retries a read that overlapped an update before taking it as it is

# Header: version, master start time (unix), leaving (1 from the moment the instance stops taking new work: a
# graceful stop or WINCH), counters of retired workers, their merged top paths.
STARTED = struct.Struct("=d")
STARTED_OFFSET = VERSION.size
LEAVING = struct.Struct("=Q")
LEAVING_OFFSET = STARTED_OFFSET + STARTED.size
EPOCH = struct.Struct("=Q")  # per-client connection counts older than this epoch are void (limits.py)
EPOCH_OFFSET = LEAVING_OFFSET + LEAVING.size
RETIRED_OFFSET = EPOCH_OFFSET + EPOCH.size
HEADER_TABLE_OFFSET = RETIRED_OFFSET + COUNTERS.size
HEADER_BYTES = HEADER_TABLE_OFFSET + TABLE_BYTES

# Slot: pid, generation, started (unix time), heartbeat (monotonic), active, idle, busy, queued, counters,
# table version, table. Active connections are reading a request or sending a reply; idle ones wait for the
# next request; busy threads run mounted code, queued requests wait for one.
IDENTITY = struct.Struct("=qqdd")
GAUGES = struct.Struct("=dqqqq")  # heartbeat, active, idle, busy, queued
SLOT = struct.Struct("=qqddqqqq")
GAUGES_OFFSET = struct.calcsize("=qqd")  # the heartbeat field of IDENTITY
COUNTERS_OFFSET = SLOT.size
SLOT_VERSION_OFFSET = COUNTERS_OFFSET + COUNTERS.size
SLOT_TABLE_OFFSET = SLOT_VERSION_OFFSET + VERSION.size
SLOT_BYTES = SLOT_TABLE_OFFSET + TABLE_BYTES
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


def read_consistent(region, version_offset, read):
    """read() retried until no update (of the seqlock at version_offset) overlapped it, within a deadline."""
    deadline = time.monotonic() + READ_DEADLINE
    while True:
        before = VERSION.unpack_from(region, version_offset)[0]
        if not before & 1:
            data = read()
            if VERSION.unpack_from(region, version_offset)[0] == before:
                return data
        if time.monotonic() > deadline:
            return read()


def write_versioned(region, version_offset, write):
    """write() framed by the seqlock at version_offset; only the one writer of that region may call it."""
    version = VERSION.unpack_from(region, version_offset)[0]
    VERSION.pack_into(region, version_offset, version + 1)
    write()
    VERSION.pack_into(region, version_offset, version + 2)


def read_table(region, offset):
    """{(crc, length, path bytes): hits} of a top-paths table."""
    entries = {}
    for i in range(TOP_PATHS):
        hits, crc, length, data = ENTRY.unpack_from(region, offset + i * ENTRY.size)
        if hits:
            entries[(crc, length, data.rstrip(b"\0"))] = hits
    return entries


def write_table(region, offset, entries):
    """Write the TOP_PATHS most hit of {key: hits} as a top-paths table, zeroing unused entries."""
    ranked = sorted(entries.items(), key=lambda item: -item[1])[:TOP_PATHS]
    region[offset:offset + TABLE_BYTES] = bytes(TABLE_BYTES)
    for i, ((crc, length, data), hits) in enumerate(ranked):
        ENTRY.pack_into(region, offset + i * ENTRY.size, hits, crc, length, data)


def merge_counts(into, more):
    for key, hits in more.items():
        into[key] = into.get(key, 0) + hits
    return into


def path_key(path):
    """The table key of a URL path (latin-1 text of the raw bytes): (crc32, length, truncated bytes)."""
    data = path.encode("latin-1")
    return zlib.crc32(data), min(len(data), 0xFFFF), data[:PATH_BYTES]


class TopPaths:
    """A worker's most requested paths with their hits (space-saving: when the table is full, a new path
    replaces the least hit one and inherits its count). Requests are tallied in `pending`, a plain dict,
    and published to the shared table on every heartbeat, before a status page and when it grows large."""

    __slots__ = ("region", "offset", "version_offset", "words", "index", "paths", "hits", "pending")

    def __init__(self, region, slot_offset):
        self.region = region
        self.offset = slot_offset + SLOT_TABLE_OFFSET
        self.version_offset = slot_offset + SLOT_VERSION_OFFSET
        self.words = memoryview(region)[self.offset:self.offset + TABLE_BYTES].cast("Q")  # hits: every ENTRY_WORDS
        self.clear()

    def clear(self):
        self.index = {}  # path -> entry number
        self.paths = []  # entry number -> path
        self.hits = []  # entry number -> hits, as in the table
        self.pending = {}  # path -> hits not published yet

    def publish(self):
        for path, count in self.pending.items():
            entry = self.index.get(path)
            if entry is None:
                self.insert(path, count)
            else:
                hits = self.hits[entry] + count
                self.hits[entry] = hits
                self.words[entry * ENTRY_WORDS] = hits
        self.pending.clear()

    def insert(self, path, count):
        paths = self.paths
        hits = self.hits
        if len(paths) < TOP_PATHS:
            entry = len(paths)
            paths.append(path)
            hits.append(count)
        else:
            entry = min(range(TOP_PATHS), key=hits.__getitem__)
            del self.index[paths[entry]]
            paths[entry] = path
            hits[entry] += count
        self.index[path] = entry
        values = (hits[entry], *path_key(path))
        offset = self.offset + entry * ENTRY.size
        write_versioned(self.region, self.version_offset, lambda: ENTRY.pack_into(self.region, offset, *values))


class WorkerSlot:
    """One worker's region of the shared stats: written by that worker, read by anyone. The counters are
    kept in a list and each new value is stored through a memoryview of 8-byte words: [1xx..5xx, bytes,
    handshakes full, resumed, failed]."""

    __slots__ = ("shared", "region", "offset", "words", "counts", "top")

    def __init__(self, shared, offset):
        self.shared = shared
        self.region = shared.region
        self.offset = offset
        start = offset + COUNTERS_OFFSET
        self.words = memoryview(self.region)[start:start + COUNTERS.size].cast("Q")
        self.counts = [0] * len(self.words)
        self.top = TopPaths(self.region, offset)

    def worker_started(self, pid, generation):
        self.counts = [0] * len(self.words)
        self.top.clear()
        self.region[self.offset:self.offset + SLOT_BYTES] = bytes(SLOT_BYTES)
        IDENTITY.pack_into(self.region, self.offset, pid, generation, time.time(), time.monotonic())

    def heartbeat(self, connections, idle, busy=0, queued=0):
        GAUGES.pack_into(self.region, self.offset + GAUGES_OFFSET, time.monotonic(), connections - idle, idle, busy,
                         queued)
        self.top.publish()

    def count_request(self, status, path):
        """A request was answered with `status` (counted before the reply is sent, so a client never sees a
        response its status page does not count yet); `path` is None when the request did not parse."""
        counts = self.counts
        word = status // 100 - 1  # the 1xx..5xx words
        n = counts[word] + 1
        counts[word] = n
        self.words[word] = n
        if path is not None:
            pending = self.top.pending
            hits = pending.get(path)
            if hits is not None:
                pending[path] = hits + 1
            elif len(pending) < PENDING_PATHS_MAX:
                pending[path] = 1
            else:
                self.top.publish()
                pending[path] = 1

    def count_limited(self, name):
        """A limit refused a connection or a request ("conn_refused", "req_refused"), or the per-client table
        could not track a client ("untracked")."""
        self.count_one(LIMIT_WORDS[name])

    def count_bytes(self, nbytes):
        """A response ended, `nbytes` of it (head and body) sent."""
        counts = self.counts
        n = counts[BYTES_WORD] + nbytes
        counts[BYTES_WORD] = n
        self.words[BYTES_WORD] = n

    def count_handshake(self, word):
        """A TLS handshake ended: HANDSHAKE_FULL, HANDSHAKE_RESUMED or HANDSHAKE_FAILED."""
        self.count_one(word)

    def count_one(self, word):
        """One more in counter `word` (count_request and count_bytes, per response, do the same inline)."""
        n = self.counts[word] + 1
        self.counts[word] = n
        self.words[word] = n

    def snapshot(self):
        """The shared stats as this worker's status page shows them: its own latest paths included."""
        self.top.publish()
        return self.shared.snapshot()

    def worker_stopped(self):
        IDENTITY.pack_into(self.region, self.offset, 0, 0, 0.0, 0.0)

    def read(self):
        pid, generation, started, heartbeat, active, idle, busy, queued = SLOT.unpack_from(self.region, self.offset)
        return {"pid": pid, "generation": generation, "started": started, "heartbeat": heartbeat,
                "active": active, "idle": idle, "busy_threads": busy, "queued": queued, **self.read_counters()}

    def read_counters(self):
        return counters_dict(COUNTERS.unpack_from(self.region, self.offset + COUNTERS_OFFSET))

    def read_top(self):
        return read_consistent(self.region, self.offset + SLOT_VERSION_OFFSET,
                               lambda: read_table(self.region, self.offset + SLOT_TABLE_OFFSET))

    @property
    def last_heartbeat(self):
        return IDENTITY.unpack_from(self.region, self.offset)[3]


def counters_dict(values):
    classes, nbytes = values[:BYTES_WORD], values[BYTES_WORD]
    limited, handshakes = values[BYTES_WORD + 1:HANDSHAKE_FULL], values[HANDSHAKE_FULL:]
    return {"requests": sum(classes), "bytes_sent": nbytes, "responses": dict(zip(STATUS_CLASSES, classes)),
            "limited": dict(zip(LIMIT_COUNTERS, limited)), "tls_handshakes": dict(zip(HANDSHAKE_RESULTS, handshakes))}


def counters_values(counters):
    """The COUNTERS words of a counters_dict()."""
    return (*counters["responses"].values(), counters["bytes_sent"], *counters["limited"].values(),
            *counters["tls_handshakes"].values())


def add_counters(total, more):
    total["requests"] += more["requests"]
    total["bytes_sent"] += more["bytes_sent"]
    for group in ("responses", "limited", "tls_handshakes"):
        for name, n in more[group].items():
            total[group][name] += n


class SharedStats:
    """The shared region: a master header, `slots` worker slots and `table_bytes` for the per-client table,
    created in the master before any fork. It is a memfd's (shared with the workers across fork, closed on exec)
    so that its `fd` can carry the table's record locks; pages never written take no memory."""

    def __init__(self, slots, table_bytes=0):
        self.table_offset = HEADER_BYTES + SLOT_BYTES * slots
        size = self.table_offset + table_bytes
        self.fd = os.memfd_create("oserver-stats")
        os.ftruncate(self.fd, size)
        self.region = mmap.mmap(self.fd, size)  # MAP_SHARED: the workers see the master's writes and each other's
        STARTED.pack_into(self.region, STARTED_OFFSET, time.time())
        self.slots = [WorkerSlot(self, HEADER_BYTES + i * SLOT_BYTES) for i in range(slots)]

    @property
    def started(self):
        return STARTED.unpack_from(self.region, STARTED_OFFSET)[0]

    @property
    def leaving(self):
        """Has the instance stopped taking new work (the master's word, read by every worker)?"""
        return LEAVING.unpack_from(self.region, LEAVING_OFFSET)[0] == 1

    @leaving.setter
    def leaving(self, value):
        LEAVING.pack_into(self.region, LEAVING_OFFSET, int(value))

    @property
    def epoch(self):
        return EPOCH.unpack_from(self.region, EPOCH_OFFSET)[0]

    def new_epoch(self):
        """Master only: void every per-client connection count (a worker died holding some); the live workers
        count their own connections again (limits.py)."""
        EPOCH.pack_into(self.region, EPOCH_OFFSET, self.epoch + 1)

    def retire(self, index):
        """Master only, once worker `index` has exited: fold its counters and paths into the header, clear it."""
        slot = self.slots[index]
        region = self.region

        def fold():
            totals = counters_dict(COUNTERS.unpack_from(region, RETIRED_OFFSET))
            add_counters(totals, slot.read_counters())
            COUNTERS.pack_into(region, RETIRED_OFFSET, *counters_values(totals))
            paths = merge_counts(read_table(region, HEADER_TABLE_OFFSET), slot.read_top())
            write_table(region, HEADER_TABLE_OFFSET, paths)
            region[slot.offset:slot.offset + SLOT_BYTES] = bytes(SLOT_BYTES)

        write_versioned(region, 0, fold)

    def snapshot(self):
        """Totals (retired workers included), live workers and the most requested paths, read consistently."""
        return read_consistent(self.region, 0, self.read_snapshot)

    def read_snapshot(self):
        totals = counters_dict(COUNTERS.unpack_from(self.region, RETIRED_OFFSET))
        paths = read_table(self.region, HEADER_TABLE_OFFSET)
        workers = []
        for slot in self.slots:
            data = slot.read()
            if any(counters_values(data)):  # a worker that has exited counts until the master retires its slot
                add_counters(totals, data)
                merge_counts(paths, slot.read_top())
            if data["pid"]:
                workers.append(data)
        top = sorted(((path_text(key), hits) for key, hits in paths.items()), key=lambda item: (-item[1], item[0]))
        return {"started": self.started, "totals": totals, "workers": workers, "top_paths": top[:TOP_PATHS]}


def path_text(key):
    """A table key as display text: the path, with "..." when it was truncated."""
    crc, length, data = key
    return data.decode("latin-1") + ("..." if length > len(data) else "")
