"""What a worker's connections report, turned into shared counters and log lines: a request answered (status
and path, counted before the reply is sent), a request refused (an info line), a response ended (bytes
counted, the access log line), a TLS handshake done (full or resumed) or failed (its reason at debug level
only: a scanner must not flood the log)."""

import logging

from oserver.net.listeners import format_address
from oserver.process.stats import HANDSHAKE_FAILED, HANDSHAKE_FULL, HANDSHAKE_RESUMED


class RequestEvents:
    def __init__(self, slot, access_log, clock):
        self.slot = slot
        self.access = access_log.access if access_log.enabled else None  # called per response
        self.clock = clock
        self.log = logging.getLogger("oserver.worker")
        self.debug = self.log.isEnabledFor(logging.DEBUG)
        self.answered = slot.count_request  # answered(status, path): no extra call on the hot path

    def refused(self, client, error):
        """A request refused before it could be answered normally (400, 408, 414, 431...)."""
        self.log.info("%s: %s", format_address(client), error)
        self.slot.count_request(error.status, None)

    def response_done(self, peer, response, aborted):
        """A response on a connection from `peer` ended (aborted: the connection closed first; only what was
        really sent counts). The access log names its client, and the peer as $realip_remote_addr."""
        sent = response.sent
        head_bytes = response.head_bytes
        body_bytes = sent - head_bytes if sent > head_bytes else 0  # a head cut short sent no body
        self.slot.count_bytes(body_bytes + head_bytes)
        if self.access is not None:
            self.access(response.client or peer, self.clock.now, response, body_bytes, aborted, peer)

    def handshake_done(self, session):
        self.slot.count_handshake(HANDSHAKE_RESUMED if session.reused else HANDSHAKE_FULL)

    def handshake_failed(self, client, reason):
        self.slot.count_handshake(HANDSHAKE_FAILED)
        if self.debug:
            self.log.debug("%s: TLS handshake failed: %s", format_address(client), reason)
