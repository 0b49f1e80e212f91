#!/usr/bin/env python3
"""Entry script: everything happens in oserver.cli.main()."""

import sys

from oserver.cli import main

if __name__ == "__main__":
    sys.exit(main())
