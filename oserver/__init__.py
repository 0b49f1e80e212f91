"""OServer: a prefork, epoll-driven HTTP/1.1 static-file server written in Python."""

__version__ = "1.0.0"
