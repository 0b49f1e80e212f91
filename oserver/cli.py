"""Command line: flags (one long flag per config option, plus the usual short ones), -s, -t, --version.

Turns argv into a validated Config and hands it to the master, or signals a running master. Every failure
before the first fork is one clear line on stderr and a non-zero exit.
"""

import argparse
import datetime
import os
import sys
from dataclasses import dataclass

from oserver import __version__
from oserver.apps.mounts import MountError, load_mounts
from oserver.config import FIELDS, ConfigError, build_config
from oserver.logs import setup_error_log
from oserver.net.tls import expiry_text, load_tls
from oserver.process.master import CONTROL_SIGNALS, Master, send_control_signal

SHORT_FLAGS = {"root": "-r", "port": "-p", "bind": "-b", "workers": "-w"}
LONG_FLAGS = {"pid_file": "--pid"}
METAVARS = {"python_path": "DIR", "bind": "ADDR", "status_allow": "ADDR", "real_ip_from": "ADDR", "error_log": "FILE",
            "access_log": "FILE", "try_files": "PATH", "tls_protocols": "VERSION"}
ERROR = "oserver: error: "  # the start of every error line, from the flags, the config and the checks


@dataclass(frozen=True, slots=True)
class TableFlag:
    """A table option given as repeated KEY=VALUE flags."""
    metavar: str
    value_type: type
    example: str


TABLE_FLAGS = {"mount": TableFlag("PREFIX=MODULE:CALLABLE", str, "/api=hello:handle"),
               "cache_max_age_by_ext": TableFlag("EXT=SECONDS", int, "css=86400"),
               "headers": TableFlag("NAME=VALUE", str, "X-Frame-Options=DENY"),
               "error_pages": TableFlag("STATUS=PATH", str, "404=/404.html")}

DESCRIPTION = "OServer: a prefork, epoll-driven HTTP/1.1 server for static files and mounted Python code."
FILE_ONLY = ", ".join(f"[[{name}]]" for name, f in FIELDS.items() if not f.metadata["flag"])
EPILOG = ("Options are read from defaults, then the config file (-c), then these flags. Relative paths in the "
          "config file are taken from the file's directory, in flags from the current directory. The arrays of "
          f"tables ({FILE_ONLY}) are set in the config file only. Signals to the master: "
          "TERM/INT fast stop, QUIT graceful stop, HUP reload, USR1 reopen logs, USR2 live upgrade (a new master "
          "from the code on disk), WINCH stop the workers, TTIN/TTOU one worker more/fewer.")


def flag_help(name):
    f = FIELDS[name]
    if name in TABLE_FLAGS:
        return (f"{f.metadata['help']}, e.g. {TABLE_FLAGS[name].example} (repeatable; replaces the config file's "
                "table)")
    default = f.default
    repeatable = ""
    if isinstance(default, tuple):
        default = " ".join(default)
        repeatable = "repeatable; "
    unit = f.metadata["unit"]
    default = default if default != "" else "none"
    return f"{f.metadata['help']} ({repeatable}default: {default}{' ' + unit if unit else ''})".replace("%", "%%")


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error: the full usage is dozens of lines and buries the actual mistake."""

    def error(self, message):
        self.exit(2, f"{ERROR}{message} (see --help)\n")


def build_parser(prog=None):
    """The flags; `prog` names the command in --help (by default how it was started: oserver, httpd.py)."""
    parser = ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"oserver {__version__}")
    parser.add_argument("-c", "--config", metavar="FILE", help="TOML config file (see conf/oserver.toml)")
    parser.add_argument("-s", "--signal", choices=sorted(CONTROL_SIGNALS),
                        help="signal the running master (found through the pidfile) and exit")
    parser.add_argument("-t", "--test-config", action="store_true",
                        help="check the configuration, print the document root it serves, and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug lines (log_level debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    for name, f in FIELDS.items():
        if not f.metadata["flag"]:
            continue
        flags = [LONG_FLAGS.get(name, "--" + name.replace("_", "-"))]
        if name in SHORT_FLAGS:
            flags.insert(0, SHORT_FLAGS[name])
        kwargs = {"dest": name, "default": None, "help": flag_help(name)}
        if f.type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif name in TABLE_FLAGS:
            kwargs.update(action="append", type=table_entry(TABLE_FLAGS[name]), metavar=TABLE_FLAGS[name].metavar)
        elif f.type is tuple:
            kwargs.update(action="append", metavar=metavar(name))
        else:
            kwargs.update(type=f.type, metavar=metavar(name))
        parser.add_argument(*flags, **kwargs)
    return parser


def metavar(name):
    """How --help shows a flag's value: a word of the option's name (ROOT, INDEX) or N for a number."""
    if name in METAVARS:
        return METAVARS[name]
    option_type = FIELDS[name].type
    if option_type is tuple:
        return name.upper().split("_")[0]
    return name.upper().split("_")[-1] if option_type is str else "N"


def table_entry(flag):
    """The argparse type of a TableFlag: its KEY=VALUE text as (key, value)."""
    def entry(text):
        key, sep, value = text.partition("=")
        try:
            if sep:
                return key, flag.value_type(value)
        except ValueError:
            pass
        raise argparse.ArgumentTypeError(f"expected {flag.metavar}, got {text!r}")
    return entry


def overrides_from(args):
    """The options given on the command line, as {option: value}."""
    values = {name: getattr(args, name) for name in FIELDS if getattr(args, name, None) is not None}
    for name in TABLE_FLAGS.keys() & values.keys():
        values[name] = dict(values[name])
    if args.verbose:
        values["log_level"] = "debug"
    elif args.quiet:
        values["log_level"] = "warning"
    return values


def main(argv=None, prog=None):
    args = build_parser(prog).parse_args(argv)
    overrides = overrides_from(args)
    try:
        config = build_config(args.config, overrides)
    except ConfigError as e:
        return fail(e)
    if args.test_config:
        try:
            load_mounts(config)  # imports the mounted code here, as each worker will
            tls = load_tls(config, bool(config.tls_port))  # each key must match its certificate
        except (MountError, ConfigError) as e:
            return fail(e)
        warn_of_expiry(tls)
        print(f"oserver: configuration {args.config or '(defaults and flags)'} is OK; "
              f"root {os.path.abspath(config.root)}")
        for i, site in enumerate(config.site):
            print(f"oserver: site[{i}] {' '.join(site.server_names)}: root {site.config.root}")
        return 0
    if args.signal:
        if not config.pid_file:
            return fail("-s needs the pidfile (--pid FILE or pid_file in the config)")
        return send_control_signal(config.pid_file, args.signal)
    try:
        setup_error_log(config.error_log, config.log_level)
    except OSError as e:
        return fail(f"error_log: cannot open {config.error_log}: {e.strerror}")
    master = Master(config, args.config, overrides)
    try:
        return master.run()
    except ConfigError as e:
        return fail(e)


def warn_of_expiry(tls):
    """-t: a warning line on stderr for each certificate expiring within 14 days."""
    if tls is None:
        return
    for certificate, days in tls.expiring(datetime.datetime.now(datetime.timezone.utc)):
        print(f"oserver: warning: {expiry_text(certificate, days)}", file=sys.stderr)


def fail(problem):
    """One error line on stderr; the exit status."""
    print(f"{ERROR}{problem}", file=sys.stderr)
    return 1
