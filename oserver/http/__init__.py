"""Sans-IO HTTP/1.x: the RFC 9110/9112 grammar, request heads and bodies, response heads, the connection's
protocol state machine and the reply items that write themselves to a transport. No sockets here."""
