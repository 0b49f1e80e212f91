"""Config error messages (issue 14): each names its key (or the file) and says what is allowed."""

import pytest

from oserver.cli import build_parser, overrides_from
from oserver.config import MAX_WORKERS, ConfigError, build_config


@pytest.fixture
def error_for(tmp_path):
    """error_for(text) -> the message of the ConfigError that a config file holding `text` raises."""
    def error(text):
        path = tmp_path / "oserver.toml"
        path.write_text(f'root = "{tmp_path}"\n{text}')
        with pytest.raises(ConfigError) as raised:
            build_config(str(path))
        return str(raised.value)
    return error


BAD_VALUES = [  # (config file text, the error message)
    ("port = 70000\n", "port: 70000 is not in 1..65535"),
    ("port = 0\n", "port: 0 is not in 1..65535"),
    ("workers = 0\n", f"workers: 0 is not in 1..{MAX_WORKERS}"),
    ("backlog = 0\n", "backlog: 0 is not > 0"),
    ("graceful_timeout = 0\n", "graceful_timeout: 0.0 is not > 0"),
    ("cache_max_age = -2\n", "cache_max_age: -2 is not >= -1"),
    ("small_file_max = -1\n", "small_file_max: -1 is not >= 0"),
    ('log_level = "loud"\n', "log_level: 'loud' is not one of debug, info, warning, error"),
    ('status_allow = ["127.0.0.1", "intranet"]\n', "status_allow: 'intranet' is not an IP address or network"),
    ("cache_max_age_by_ext = {css = -1}\n", "cache_max_age_by_ext: css: -1 is not an integer >= 0"),
    ('port = "eighty"\n', "port: expected int, got 'eighty'"),
]


@pytest.mark.parametrize("text, message", BAD_VALUES, ids=[message for _, message in BAD_VALUES])
def test_a_bad_value_is_named_with_what_is_allowed(error_for, text, message):
    assert error_for(text) == message


def test_an_unreadable_config_file_is_named(tmp_path):
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as raised:
        build_config(str(path))
    assert str(raised.value) == f"config file {path}: cannot read it: No such file or directory"


def test_cache_max_age_by_ext_has_a_repeatable_flag():
    args = build_parser().parse_args(["--cache-max-age-by-ext", "css=86400", "--cache-max-age-by-ext", ".JS=60"])
    assert overrides_from(args)["cache_max_age_by_ext"] == {"css": 86400, ".JS": 60}


def test_a_max_age_flag_that_is_no_number_is_refused(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--cache-max-age-by-ext", "css=a day"])
    assert capsys.readouterr().err == ("oserver: error: argument --cache-max-age-by-ext: expected EXT=SECONDS, "
                                       "got 'css=a day' (see --help)\n")
