"""Process titles for `ps` ("oserver: master process ...", "oserver: worker process"), through the optional
setproctitle module: without it titles stay unchanged, which the master reports once."""

import logging

try:
    from setproctitle import setproctitle
except ImportError:
    setproctitle = None


def set_process_title(title):
    """Set this process's title; False (logged once, by the first caller) when setproctitle is missing."""
    global setproctitle
    if setproctitle is None:
        logging.getLogger("oserver").warning("setproctitle is not installed; process titles stay unchanged")
        setproctitle = False
    if not setproctitle:
        return False
    setproctitle(title)
    return True
