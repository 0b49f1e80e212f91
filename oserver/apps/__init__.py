"""Mounted Python code: the mount table, the handler API, the WSGI adapter and the executors that run it."""
