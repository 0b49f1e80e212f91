"""Live upgrade (USR2, nginx's contract): start the code on disk again, handing it the listening sockets.

start_new_master() forks a child that execs the same interpreter with the same arguments (`sys.orig_argv`: a
script, `-m oserver` or a console script), directory and environment, the listening sockets inherited and
listed in OSERVER_LISTENERS ("fd=host:port" items, ";"-separated); OSERVER_SOCKET_ACTIVATION says they came
from systemd. inherited_listeners() is the new master's side. Neither touches HTTP or workers.
"""

import os
import signal
import socket
import sys

from oserver.net.listeners import format_address

LISTENERS_ENV = "OSERVER_LISTENERS"
ACTIVATION_ENV = "OSERVER_SOCKET_ACTIVATION"
EXEC_FAILED = 127  # the child's exit code when the exec itself failed


def listeners_text(listeners):
    """{(host, port): socket} as OSERVER_LISTENERS's value."""
    return ";".join(f"{sock.fileno()}={format_address(address)}" for address, sock in listeners.items())


def start_new_master(listeners, activated):
    """Fork and exec a new master on `listeners` ({address: socket}); its pid. OSError if it cannot fork."""
    env = dict(os.environ, **{LISTENERS_ENV: listeners_text(listeners)})
    if activated:
        env[ACTIVATION_ENV] = "1"
    argv = [sys.executable, *sys.orig_argv[1:]]
    # Until the exec, no signal may run the master's handlers in the child (they feed the master's wakeup pipe).
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        pid = os.fork()
    except OSError:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        raise
    if pid == 0:
        try:
            signal.set_wakeup_fd(-1)  # the master's wakeup pipe is not the new master's
            for sock in listeners.values():
                os.set_inheritable(sock.fileno(), True)
            signal.pthread_sigmask(signal.SIG_SETMASK, [])  # an exec keeps the mask: leave none blocked
            os.execve(sys.executable, argv, env)
        finally:
            os._exit(EXEC_FAILED)
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return pid


def inherited_listeners():
    """({address: socket}, from socket activation) handed over by the master that started this one, or
    (None, False). OSError when a descriptor is not the listening socket it is said to be."""
    text = os.environ.pop(LISTENERS_ENV, None)
    activated = os.environ.pop(ACTIVATION_ENV, None) == "1"
    if text is None:
        return None, False
    listeners = {}
    for item in filter(None, text.split(";")):
        fd, _, name = item.partition("=")
        sock = socket.socket(fileno=int(fd))
        address = sock.getsockname()[:2]
        if format_address(address) != name or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise OSError(f"descriptor {fd} is not the socket listening on {name}")
        sock.setblocking(False)
        os.set_inheritable(sock.fileno(), False)
        listeners[address] = sock
    return listeners, activated
