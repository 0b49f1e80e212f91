"""Handlers that tests/integration/test_threads.py mounts on a worker with a thread pool: ones that block
until the test opens a gate, meet at a barrier, stream slowly, fail, or report their environ.

Gates and barriers are files (the test and the server are different processes); every wait is bounded.
"""

import json
import os
import time
import uuid

WAIT_LIMIT = 30.0  # seconds any handler waits for a gate or a barrier before answering 504
POLL = 0.01
GATE_ENV = "THREADED_GATE_DIR"  # where the test creates gate files and barrier arrivals appear


def query(request):
    return dict(pair.partition("=")[::2] for pair in request.query.split("&") if pair)


def wait_until(condition):
    deadline = time.monotonic() + WAIT_LIMIT
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL)
    return True


def blocked(request):
    """Waits (blocking its thread) until the gate file ?gate=NAME exists."""
    gate = os.path.join(os.environ[GATE_ENV], query(request)["gate"])
    opened = wait_until(lambda: os.path.exists(gate))
    return (200 if opened else 504), {"Content-Type": "text/plain"}, b"gate opened\n" if opened else b"timeout\n"


def barrier(request):
    """Arrives at barrier ?name=NAME, then waits until ?parties=N handlers have arrived: answers 200 only if
    N handlers ran at the same time."""
    params = query(request)
    directory = os.path.join(os.environ[GATE_ENV], params["name"])
    os.makedirs(directory, exist_ok=True)
    open(os.path.join(directory, uuid.uuid4().hex), "w").close()
    met = wait_until(lambda: len(os.listdir(directory)) >= int(params["parties"]))
    return (200 if met else 504), {"Content-Type": "text/plain"}, b"met\n" if met else b"alone\n"


def slow_stream(request):
    """A streamed body whose chunks come slowly (?chunks=N, ?delay=S between them): pulled on the pool."""
    params = query(request)

    def chunks():
        for n in range(int(params.get("chunks", 3))):
            time.sleep(float(params.get("delay", 0.2)))
            yield b"chunk %d\n" % n

    return 200, {"Content-Type": "text/plain"}, chunks()


def sleepy(request):
    """Sleeps ?seconds=S (bounded), then answers."""
    time.sleep(min(float(query(request).get("seconds", 1)), WAIT_LIMIT))
    return 200, {"Content-Type": "text/plain"}, b"slept\n"


def boom(request):
    raise RuntimeError("boom on a pool thread")


def environ_app(environ, start_response):
    """A WSGI app reporting the wsgi.* flags it was given."""
    flags = {key: environ[key] for key in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once")}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(flags).encode()]


def gated_stream(request):
    """A streamed body: its first chunk at once, the second once the gate file ?gate=NAME exists."""
    gate = os.path.join(os.environ[GATE_ENV], query(request)["gate"])

    def chunks():
        yield b"first\n"
        wait_until(lambda: os.path.exists(gate))
        yield b"second\n"

    return 200, {"Content-Type": "text/plain"}, chunks()
