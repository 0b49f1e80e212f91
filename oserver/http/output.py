"""Output items: a queued Response and the body parts that each know how to write themselves to a transport.

A Response sends its head (and small body) first, then asks each part in turn to write: a FileSpan goes out
with sendfile, Data with send, a streamed body as the client takes it. Parts share the connection's per-turn
send quota, so one fast download cannot hold a worker's loop. A transport that is full raises
BlockingIOError (the Response keeps its place); a broken one raises OSError; a part that can no longer keep
its promise raises SendFailed. No class switch: the transport and the parts are duck-typed.
"""

from dataclasses import dataclass


class SendFailed(Exception):
    """The response cannot be completed (a file shrank, a body broke its length): close the connection."""


class Part:
    """A body part after the head. `write(response, transport)` sends or hands over some of it, spending
    `response.quota`, and returns True once the part is finished; `close()` runs however the response ends.
    `corks`: the head may wait for this part (MSG_MORE), because it follows at once."""

    __slots__ = ()
    corks = False

    def close(self):
        pass


@dataclass(slots=True, eq=False)
class FileSpan(Part):
    """`count` bytes of an open file from `offset`, sent with sendfile."""

    file: object
    offset: int
    count: int
    corks = True

    def write(self, response, transport):
        count, quota = self.count, response.quota
        asked = count if count < quota else quota
        n = transport.sendfile(self.file, self.offset, asked)
        if n == 0:  # the file shrank under us: never send short data
            raise SendFailed(f"file truncated while being sent: {self.file.name}")
        response.sent += n
        response.quota -= n
        self.offset += n
        self.count -= n
        if self.count == 0:
            return True
        if n < asked:  # the socket took less than offered: it is full, asking again would only say so
            raise BlockingIOError
        return False


@dataclass(slots=True, eq=False)
class Data(Part):
    """Bytes between other parts (the part heads of a multipart/byteranges body around FileSpans)."""

    data: bytes
    corks = True

    def write(self, response, transport):
        response.pending = self.data
        response.quota -= len(self.data)
        return True


@dataclass(slots=True, eq=False)
class Response:
    """One reply in a connection's output queue, and what the access log and counters need once it ends:
    its request (None when refused before it parsed), status, the head's size (with a 100 Continue sent
    ahead of it), when its request started, `received` (what a refused request began with), its client's
    address, and the TLS session of its connection (None on plain HTTP)."""

    request: object
    status: int
    head_bytes: int
    started: float
    received: bytes | None
    pending: bytes  # head (and small body) bytes still to send
    parts: list | tuple  # () when the head (and data) is all there is
    sent: int = 0  # bytes of this response sent so far (head included)
    quota: int = 0  # bytes it may still send in this loop turn
    client: tuple | None = None  # the request's client (through trusted proxies), None: the peer's
    tls: object = None

    def write(self, transport):
        """Send what the transport takes within `quota`; True once the whole response is out, False when the
        quota is spent (or the transport took part of a send). BlockingIOError: the transport is full."""
        parts = self.parts
        while True:
            pending = self.pending
            if pending:
                n = (transport.send_corked if parts and parts[0].corks else transport.send)(pending)
                self.sent += n
                if n < len(pending):
                    self.pending = memoryview(pending)[n:]
                    return False
                self.pending = b""
            if not parts:
                return True
            if self.quota <= 0:
                return False
            if parts[0].write(self, transport):
                parts.pop(0).close()

    def ended(self, events, peer, aborted):
        """The response is over (sent whole, or `aborted` with its connection to `peer`): release its parts,
        then let the counters and the access log know."""
        if self.parts:
            for part in self.parts:
                part.close()
            self.parts.clear()
        events.response_done(peer, self, aborted)


@dataclass(slots=True, eq=False)
class Interim:
    """An interim (1xx) response, e.g. 100 Continue: its bytes count in the final response's head."""

    pending: bytes
    sent: int = 0
    quota: int = 0

    def write(self, transport):
        n = transport.send(self.pending)
        self.sent += n
        if n < len(self.pending):
            self.pending = memoryview(self.pending)[n:]
            return False
        return True

    def ended(self, events, peer, aborted):
        pass
