"""Counters shared by the workers and the master: one anonymous shared mmap made before fork, a slot each.

A worker writes only its own slot (heartbeat, requests, bytes, connections, responses by status class);
the master reads heartbeats for its watchdog, and any worker can read every slot for the status page.
"""

import mmap
import struct
import time

# pid, generation, started (unix time), heartbeat (monotonic), active, idle, requests, bytes, 1xx..5xx
SLOT = struct.Struct("<qqddqqQQ5Q")
IDENTITY = struct.Struct("<qqdd")
GAUGES = struct.Struct("<dqq")  # heartbeat, active, idle
COUNTERS = struct.Struct("<QQ5Q")  # requests, bytes, 1xx..5xx
GAUGES_OFFSET = 24
COUNTERS_OFFSET = 48


class WorkerSlot:
    """One worker's region of the shared stats: written by that worker, read by anyone."""

    __slots__ = ("region", "offset", "requests", "bytes", "classes")

    def __init__(self, region, offset):
        self.region = region
        self.offset = offset
        self.requests = 0
        self.bytes = 0
        self.classes = [0, 0, 0, 0, 0]

    def worker_started(self, pid, generation):
        self.requests = self.bytes = 0
        self.classes = [0, 0, 0, 0, 0]
        SLOT.pack_into(self.region, self.offset, pid, generation, time.time(), time.monotonic(), 0, 0, 0, 0,
                       0, 0, 0, 0, 0)

    def heartbeat(self, active, idle):
        GAUGES.pack_into(self.region, self.offset + GAUGES_OFFSET, time.monotonic(), active, idle)

    def count_response(self, status, nbytes):
        self.requests += 1
        self.bytes += nbytes
        classes = self.classes
        classes[status // 100 - 1] += 1
        COUNTERS.pack_into(self.region, self.offset + COUNTERS_OFFSET, self.requests, self.bytes, *classes)

    def worker_stopped(self):
        IDENTITY.pack_into(self.region, self.offset, 0, 0, 0.0, 0.0)

    def read(self):
        pid, generation, started, heartbeat, active, idle, requests, nbytes, *classes = SLOT.unpack_from(
            self.region, self.offset)
        return {"pid": pid, "generation": generation, "started": started, "heartbeat": heartbeat,
                "active": active, "idle": idle, "requests": requests, "bytes_sent": nbytes,
                "responses": {f"{i + 1}xx": n for i, n in enumerate(classes)}}

    @property
    def last_heartbeat(self):
        return IDENTITY.unpack_from(self.region, self.offset)[3]


class SharedStats:
    """The shared region: `slots` worker slots, created in the master before any fork."""

    def __init__(self, slots):
        self.region = mmap.mmap(-1, SLOT.size * slots)  # MAP_SHARED | MAP_ANONYMOUS: survives fork
        self.slots = [WorkerSlot(self.region, i * SLOT.size) for i in range(slots)]

    def live_workers(self):
        return [data for data in (slot.read() for slot in self.slots) if data["pid"]]
