"""An I/O-bound mount handler: every request waits ~20 ms, as one calling a slow database or upstream would.

The wait is a time.sleep, which uses no CPU: a sleeping worker leaves the cores to the others, so throughput
grows with the number of workers, past the number of cores. Mount it with `"/io" = "io_bound:handle"`;
`?ms=` sets the wait in milliseconds (at most MAX_WAIT_MS).
"""

import os
import time

from example_params import BadParameter, bounded_int, text_response

DEFAULT_WAIT_MS = 20
MAX_WAIT_MS = 1000  # a client cannot park a worker for longer than a second
MS_PER_SECOND = 1000


def handle(request):
    try:
        wait_ms = bounded_int(request.query, "ms", DEFAULT_WAIT_MS, MAX_WAIT_MS)
    except BadParameter as e:
        return text_response(400, f"{e}\n")
    time.sleep(wait_ms / MS_PER_SECOND)
    return text_response(200, f"io: waited {wait_ms} ms, worker {os.getpid()}\n")
