"""Executors: where mounted code runs. `submit(call, protocol)` runs an AppCall and hands its Reply to
`protocol.app_replied(call, reply)`, on the worker's loop thread.

InlineExecutor, the first and default one, calls the code right away in the loop: until it returns, the
worker serves nobody else. (A thread pool is the next executor; the protocol already waits for its reply in
its WAITING_FOR_APP state.)
"""

from oserver.apps.handlers import run_app


class InlineExecutor:
    def __init__(self, clock):
        self.clock = clock

    def submit(self, call, protocol):
        reply = run_app(call, protocol.client, protocol.local_address())
        self.clock.update()  # the reply is timed from the request's start; what follows from now
        protocol.app_replied(call, reply)
