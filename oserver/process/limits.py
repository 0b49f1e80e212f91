"""Per-client limits (nginx's limit_conn and limit_req, keyed by the client's address), counted across all the
workers in a fixed-size table at the end of the shared stats region.

The table: SETS sets of WAYS entries. An entry holds a client's key (its address as 16 bytes, IPv4 mapped into
IPv6), its open connections and the epoch they were counted in, and its leaky bucket (excess requests, time of
the last one). A client lives in the set its key hashes to, and a set is read and changed only under a POSIX
record lock on its first byte of the region's memfd (fcntl F_SETLKW): the kernel serialises the workers, and
drops the lock of a worker that dies. A lock is held for one read of 8 entries and one write, microseconds, never
across I/O. When every entry of a set holds connections, a new client is let through uncounted ("untracked" on
the status page): memory stays bounded whatever the number of clients.

A worker that dies leaves the counts of its connections behind: the master then starts a new epoch, which
voids every connection count, and each live worker counts its own connections again at its next tick.
"""

import fcntl
import ipaddress
import logging
import math
import struct
import time
import zlib

from oserver.http.response import error_reply
from oserver.memo import Memo

ENTRY = struct.Struct("=16sqqdd")  # key, connections, their epoch, bucket excess (requests), last request time
WAYS = 8
SETS = 4096
SET_BYTES = WAYS * ENTRY.size
TABLE_BYTES = SETS * SET_BYTES  # 1.5 MiB of shared memory, touched only as clients come
EMPTY = bytes(16)
V4_MAPPED = bytes(10) + b"\xff\xff"
CLIENT_KEYS_CACHED = 4096  # client hosts whose table key is remembered (emptied when full: clients choose them)
REFUSED = -1  # add_connection: the client holds its limit already
UNTRACKED = -2  # the client's set is full of clients holding connections: let through, uncounted
REPORT_INTERVAL = 10.0  # seconds between the error-log lines that sum up refusals (never one line per refusal)
TOO_MANY_CONNECTIONS = error_reply(503)

log = logging.getLogger("oserver.worker")


def client_key(host):
    """The table key of an IP address text: 16 bytes (IPv4 as ::ffff:a.b.c.d); ValueError for anything else."""
    packed = ipaddress.ip_address(host).packed
    return packed if len(packed) == 16 else V4_MAPPED + packed


class ClientTable:
    """The shared table; `stats` is the SharedStats whose region (and memfd) holds it."""

    def __init__(self, stats):
        self.stats = stats
        self.region = stats.region
        self.fd = stats.fd
        self.offset = stats.table_offset

    @property
    def epoch(self):
        return self.stats.epoch

    def update(self, key, decide):
        """Under the lock of key's set: decide(entry) gets the key's entry tuple (None for a client not in the
        table) and returns (the entry to write, or None to write nothing; the result). UNTRACKED when the set
        has no room for a new client."""
        base = self.offset + zlib.crc32(key) % SETS * SET_BYTES
        fcntl.lockf(self.fd, fcntl.LOCK_EX, 1, base)
        try:
            way, entry = self.find(base, key)
            if way is None:
                return UNTRACKED
            entry, result = decide(entry)
            if entry is not None:
                ENTRY.pack_into(self.region, base + way * ENTRY.size, *entry)
            return result
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, base)

    def find(self, base, key):
        """(way, entry) of key in the set at `base`; else (way, None) of an empty entry, or of the entry with
        no counted connection whose last request is oldest (it is replaced); (None, None) when all hold some."""
        at = self.region.find(key, base, base + SET_BYTES)  # a known client: found in C, unpacked alone
        if at >= 0 and (at - base) % ENTRY.size == 0:
            return (at - base) // ENTRY.size, ENTRY.unpack_from(self.region, at)
        epoch = self.epoch
        free = oldest = None
        for way, entry in enumerate(ENTRY.iter_unpack(self.region[base:base + SET_BYTES])):
            if entry[0] == key:
                return way, entry
            if entry[0] == EMPTY:
                free = way if free is None else free
            elif (entry[1] == 0 or entry[2] != epoch) and (oldest is None or entry[4] < oldest[1]):
                oldest = (way, entry[4])
        if free is not None:
            return free, None
        return (oldest[0], None) if oldest is not None else (None, None)

    def add_connection(self, key, limit=None):
        """Count one more connection of the client: the epoch it is counted in, or REFUSED when it holds
        `limit` already (None: count it whatever it holds), or UNTRACKED."""
        epoch = self.epoch

        def decide(entry):
            if entry is None:
                return (key, 1, epoch, 0.0, time.monotonic()), epoch
            held = entry[1] if entry[2] == epoch else 0
            if limit is not None and held >= limit:
                return None, REFUSED
            return (key, held + 1, epoch, entry[3], entry[4]), epoch

        return self.update(key, decide)

    def remove_connection(self, key, epoch):
        """One connection of the client, counted in `epoch`, closed (a count of a voided epoch is gone already)."""
        def decide(entry):
            if entry is None or entry[2] != epoch or entry[1] <= 0:
                return None, None
            return (key, entry[1] - 1, epoch, entry[3], entry[4]), None

        self.update(key, decide)

    def take_request(self, key, rate, burst):
        """One more request of the client, nginx's leaky bucket (limit_req with nodelay): 0 when it may go on,
        else the whole seconds until it may (a client's first request always goes on); or UNTRACKED."""
        now = time.monotonic()

        def decide(entry):
            if entry is None:
                return (key, 0, self.epoch, 0.0, now), 0
            excess = max(entry[3] - rate * max(now - entry[4], 0.0) + 1, 0.0)
            if excess > burst:
                return None, max(math.ceil((excess - burst) / rate), 1)
            return (key, entry[1], entry[2], excess, now), 0

        return self.update(key, decide)


class Limits:
    """A worker's side of limit_conn_per_ip and limit_req_per_ip. Clients in real_ip_from (the balancers, and
    their own health checks) and unix-socket clients are never limited."""

    def __init__(self, config, table, slot, trusted):
        self.max_connections = config.limit_conn_per_ip
        self.rate = config.limit_req_per_ip
        self.burst = config.limit_req_burst
        self.table = table
        self.slot = slot  # this worker's stats slot: the refusal counters
        self.trusted = trusted
        self.keys = Memo(self.table_key, CLIENT_KEYS_CACHED)  # host -> table key, None: a client never limited
        self.epoch = table.epoch
        self.refusals = {"conn_refused": 0, "req_refused": 0}  # since the last report
        self.next_report = 0.0

    def key(self, address):
        if address.__class__ is not tuple:
            return None
        return self.keys[address[0]]

    def table_key(self, host):
        return None if self.trusted.contains(host) else client_key(host)

    def connection_opened(self, conn, address):
        """Count a new connection from `address` (its client): False when the client holds its limit."""
        key = self.key(address) if self.max_connections else None
        if key is None:
            return True
        epoch = self.table.add_connection(key, self.max_connections)
        if epoch == REFUSED:
            self.refused("conn_refused")
            return False
        if epoch == UNTRACKED:
            self.slot.count_limited("untracked")
        else:
            conn.limit = (key, epoch)
        return True

    def connection_closed(self, conn):
        key, epoch = conn.limit
        conn.limit = None
        self.table.remove_connection(key, epoch)

    def request_refusal(self, client):
        """None when the client may make this request, else the 429 reply (with Retry-After) it gets."""
        key = self.key(client)
        if key is None:
            return None
        wait = self.table.take_request(key, self.rate, self.burst)
        if wait == UNTRACKED:
            self.slot.count_limited("untracked")
        elif wait:
            self.refused("req_refused")
            return error_reply(429, b"Retry-After: %d\r\n" % wait)
        return None

    def refused(self, name):
        self.slot.count_limited(name)
        self.refusals[name] += 1

    def tick(self, now, connections):
        """Count this worker's connections again after the master voided the counts (a new epoch), and sum up
        the refusals in one error-log line at most every REPORT_INTERVAL seconds."""
        epoch = self.table.epoch
        if epoch != self.epoch:
            self.epoch = epoch
            for conn in connections:
                if conn.limit is not None and conn.limit[1] != epoch:
                    self.recount(conn)
        if now >= self.next_report and any(self.refusals.values()):
            self.next_report = now + REPORT_INTERVAL
            log.warning("per-client limits refused %d connections (limit_conn_per_ip %d) and %d requests "
                        "(limit_req_per_ip %g) since the last report", self.refusals["conn_refused"],
                        self.max_connections, self.refusals["req_refused"], self.rate)
            self.refusals = dict.fromkeys(self.refusals, 0)

    def recount(self, conn):
        key = conn.limit[0]
        epoch = self.table.add_connection(key)
        conn.limit = None if epoch == UNTRACKED else (key, epoch)
