"""A CPU-bound mount handler: every request spins a pure-Python loop (~12 ms of CPU at the default size).

It shows that a busy handler holds its whole worker: throughput grows with workers only up to the number of
cores. Mount it with `"/cpu" = "cpu_bound:handle"`; `?n=` sets the loop's iterations (at most MAX_ITERATIONS).
"""

import os
import time

from example_params import BadParameter, bounded_int, text_response

DEFAULT_ITERATIONS = 200_000  # ~12 ms of pure Python on a 2020s x86 core
MAX_ITERATIONS = 2_000_000  # ~10x the default: a client cannot hold a worker for long
HASH_MULTIPLIER = 31
HASH_MASK = 0xFFFFFFFF
MS_PER_SECOND = 1000


def burn(iterations):
    """A rolling hash of 0..iterations-1: pure interpreter work, no system call, nothing to wait for."""
    total = 0
    for i in range(iterations):
        total = (total * HASH_MULTIPLIER + i) & HASH_MASK
    return total


def handle(request):
    try:
        iterations = bounded_int(request.query, "n", DEFAULT_ITERATIONS, MAX_ITERATIONS)
    except BadParameter as e:
        return text_response(400, f"{e}\n")
    started = time.process_time()
    digest = burn(iterations)
    cpu_ms = (time.process_time() - started) * MS_PER_SECOND
    return text_response(200, f"cpu: {iterations} iterations, hash {digest:08x}, {cpu_ms:.1f} ms CPU, "
                              f"worker {os.getpid()}\n")
