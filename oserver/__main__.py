"""`python -m oserver`: the same command line as the `oserver` command and httpd.py."""

import sys

from oserver.cli import main

sys.exit(main(prog="python -m oserver"))
