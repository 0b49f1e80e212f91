"""The network layer: listening sockets and transports (a connection's bytes: recv, send, sendfile, close)."""
