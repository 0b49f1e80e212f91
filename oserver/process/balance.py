"""Accept balancing: whether a worker holds clearly more connections than its least loaded peer.

Such a worker leaves the listener to its peers for a moment, so that a burst of connections is shared instead
of taken by whichever worker happens to run. Reads the peers' connection counts from the shared stats slots
(same generation, heartbeat fresh); never touches sockets.
"""

BALANCE_SLACK = 64  # connections a worker may hold above its least loaded peer (at least one accept batch)
# With mounted code a request may hold its worker for milliseconds: connections are shared one for one.
MOUNTED_BALANCE_SLACK = 1
PEER_SILENCE = 1.0  # seconds: a peer whose heartbeat is older may be stuck and is not counted on to accept
PEER_LOOKUP_INTERVAL = 0.25  # seconds: with no peer known, accepting looks again at most this often


class AcceptBalance:
    """`slack`: the load a worker may hold above its least loaded peer; `allowance`: the load up to which it
    takes new connections whatever its peers hold (by default the slack)."""

    def __init__(self, slot, generation, slack=BALANCE_SLACK, allowance=None):
        self.slot = slot
        self.generation = generation
        self.slack = slack
        self.allowance = slack if allowance is None else allowance
        self.peers = ()
        self.next_lookup = 0.0

    def find_peers(self, now):
        """The live workers of this generation but this one (looked up at every tick: peers come and go)."""
        own = self.slot
        self.next_lookup = now + PEER_LOOKUP_INTERVAL
        self.peers = tuple(slot for slot in own.shared.slots if slot is not own and
                           now - slot.last_heartbeat < PEER_SILENCE and slot.read()["generation"] == self.generation)

    def over_share(self, load, now):
        """True when `load` has reached the allowance and exceeds the least loaded fresh peer's by more than the
        slack. A load is connections plus requests for mounted code waiting for a thread (see Worker.load)."""
        if load < self.allowance:
            return False
        if not self.peers and now >= self.next_lookup:  # peers that started since the last tick count too
            self.find_peers(now)
        least = None
        for slot in self.peers:
            data = slot.read()
            if now - data["heartbeat"] < PEER_SILENCE:
                count = data["active"] + data["idle"] + data["queued"]
                if least is None or count < least:
                    least = count
        return least is not None and load > least + self.slack
