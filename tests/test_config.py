"""Settings: built-in defaults, then configs/config.yaml or CONFIG_FILE, then env."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from shardlimit import ALGORITHMS, ConfigError, ManualClock, Rate
from shardlimit.__main__ import main
from shardlimit.config import (
    DEFAULTS,
    VARIABLES,
    Settings,
    default_config_file,
    load_settings,
)

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def without_file(settings: Settings) -> Settings:
    return dataclasses.replace(settings, config_file=None)


# --- defaults and the shipped file ----------------------------------------------------


def test_builtin_defaults_are_the_documented_ones() -> None:
    documented = Settings(
        server_port=8080,
        store_shard_count=64,
        store_gc_interval=30.0,
        rate_limit=100,
        window_size=60.0,
        rate_limit_algorithm="sliding_window",
        store_url="memory://",
        store_max_keys=1_000_000,
        profiling_addr="127.0.0.1:6060",
        trusted_proxies=(),
        web_concurrency=1,
    )
    assert documented == DEFAULTS
    assert DEFAULTS.rate == Rate(100, 60.0)


def test_the_checkout_config_yaml_is_found_and_equals_the_builtin_defaults() -> None:
    assert default_config_file() == REPO / "configs" / "config.yaml"
    settings = load_settings({})
    assert settings.config_file == str(REPO / "configs" / "config.yaml")
    assert without_file(settings) == DEFAULTS


def test_every_variable_has_a_yaml_key_in_the_shipped_file() -> None:
    text = (REPO / "configs" / "config.yaml").read_text(encoding="utf-8")
    keys = set(re.findall(r"^([a-z_]+):", text, flags=re.MULTILINE))
    assert keys == {name.lower() for name in VARIABLES}


def test_an_empty_file_means_the_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "# nothing set\n")
    settings = load_settings({}, config_file=path)
    assert settings.config_file == str(path)
    assert without_file(settings) == DEFAULTS


# --- every variable -------------------------------------------------------------------


GOOD = [
    ("SERVER_PORT", "9000", "server_port", 9000),
    ("SERVER_PORT", " 1 ", "server_port", 1),
    ("STORE_SHARD_COUNT", "128", "store_shard_count", 128),
    ("STORE_GC_INTERVAL", "250ms", "store_gc_interval", 0.25),
    ("STORE_GC_INTERVAL", "5m", "store_gc_interval", 300.0),
    ("STORE_GC_INTERVAL", "0", "store_gc_interval", 0.0),
    ("RATE_LIMIT", "5", "rate_limit", 5),
    ("RATE_LIMIT", "4294967295", "rate_limit", 4294967295),
    ("WINDOW_SIZE", "60s", "window_size", 60.0),
    ("WINDOW_SIZE", "1h", "window_size", 3600.0),
    ("WINDOW_SIZE", "1d", "window_size", 86400.0),
    ("WINDOW_SIZE", "2.5", "window_size", 2.5),
    ("RATE_LIMIT_ALGORITHM", "token_bucket", "rate_limit_algorithm", "token_bucket"),
    ("STORE_URL", "redis://redis:6379/0", "store_url", "redis://redis:6379/0"),
    ("STORE_URL", "rediss://:pw@host:6380/1", "store_url", "rediss://:pw@host:6380/1"),
    ("STORE_URL", "redis+cluster://n1:7000", "store_url", "redis+cluster://n1:7000"),
    ("STORE_MAX_KEYS", "1000", "store_max_keys", 1000),
    ("PROFILING_ADDR", "0.0.0.0:6061", "profiling_addr", "0.0.0.0:6061"),
    ("PROFILING_ADDR", "[::1]:0", "profiling_addr", "[::1]:0"),
    ("PROFILING_ADDR", "localhost:6060", "profiling_addr", "localhost:6060"),
    ("PROFILING_ADDR", "OFF", "profiling_addr", None),
    ("TRUSTED_PROXIES", "", "trusted_proxies", ()),
    (
        "TRUSTED_PROXIES",
        "10.0.0.0/8, 192.168.1.10 fd00::/8",
        "trusted_proxies",
        ("10.0.0.0/8", "192.168.1.10/32", "fd00::/8"),
    ),
    ("TRUSTED_PROXIES", "10.1.2.3/8", "trusted_proxies", ("10.0.0.0/8",)),
    ("WEB_CONCURRENCY", "4", "web_concurrency", 4),
]


@pytest.mark.parametrize(("var", "raw", "field", "expected"), GOOD)
def test_each_variable_from_the_environment(
    var: str, raw: str, field: str, expected: Any
) -> None:
    settings = load_settings({var: raw})
    assert getattr(settings, field) == expected
    others = {f.name for f in dataclasses.fields(Settings)} - {field, "config_file"}
    for other in others:
        assert getattr(settings, other) == getattr(DEFAULTS, other)


def test_the_good_values_cover_every_variable() -> None:
    assert {var for var, *_ in GOOD} == set(VARIABLES)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_is_accepted(algorithm: str) -> None:
    assert load_settings({"RATE_LIMIT_ALGORITHM": algorithm}).rate_limit_algorithm == (
        algorithm
    )


BAD = [
    ("SERVER_PORT", "http", "TCP port"),
    ("SERVER_PORT", "0", "TCP port"),
    ("SERVER_PORT", "65536", "TCP port"),
    ("SERVER_PORT", "-1", "TCP port"),
    ("SERVER_PORT", "80.5", "TCP port"),
    ("SERVER_PORT", "", "TCP port"),
    ("STORE_SHARD_COUNT", "0", "shards"),
    ("STORE_SHARD_COUNT", "lots", "shards"),
    ("STORE_SHARD_COUNT", "65537", "shards"),
    ("STORE_GC_INTERVAL", "often", "duration"),
    ("STORE_GC_INTERVAL", "-5s", "duration"),
    ("STORE_GC_INTERVAL", "10 fortnights", "duration"),
    ("RATE_LIMIT", "0", "whole number"),
    ("RATE_LIMIT", "1e3", "whole number"),
    ("RATE_LIMIT", "4294967296", "whole number"),
    ("RATE_LIMIT", "ten", "whole number"),
    ("RATE_LIMIT", "9" * 5000, "whole number"),  # beyond int()'s 4300 digits
    ("WINDOW_SIZE", "0s", "duration"),
    ("WINDOW_SIZE", "1w", "duration"),
    ("WINDOW_SIZE", "soon", "duration"),
    ("WINDOW_SIZE", "20000d", "duration"),
    ("RATE_LIMIT_ALGORITHM", "leaky_bucket", "token_bucket"),
    ("RATE_LIMIT_ALGORITHM", "", "sliding_window"),
    ("STORE_URL", "mysql://db/0", "redis://"),
    ("STORE_URL", "memory://elsewhere", "memory://"),
    ("STORE_URL", "redis://", "redis://"),
    ("STORE_URL", "localhost:6379", "redis://"),
    ("STORE_MAX_KEYS", "0", "keys"),
    ("STORE_MAX_KEYS", "many", "keys"),
    ("PROFILING_ADDR", "6060", "host:port"),
    ("PROFILING_ADDR", "localhost:http", "host:port"),
    ("PROFILING_ADDR", "127.0.0.1:70000", "host:port"),
    ("PROFILING_ADDR", "::1:6060", "host:port"),
    ("PROFILING_ADDR", "300.1.1.1:6060", "host:port"),
    ("PROFILING_ADDR", "", "host:port"),
    ("TRUSTED_PROXIES", "10.0.0.0/8, proxy.local", "'proxy.local'"),
    ("TRUSTED_PROXIES", "10.0.0.0/33", "'10.0.0.0/33'"),
    ("WEB_CONCURRENCY", "0", "worker processes"),
    ("WEB_CONCURRENCY", "auto", "worker processes"),
]


@pytest.mark.parametrize(("var", "raw", "valid"), BAD)
def test_a_bad_value_names_the_source_the_variable_the_value_and_what_is_valid(
    var: str, raw: str, valid: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({var: raw})
    message = str(caught.value)
    assert message.startswith(f"environment: {var}={raw!r} is not valid; expected ")
    assert valid in message
    assert "\n" not in message


def test_the_bad_values_cover_every_variable() -> None:
    assert {var for var, *_ in BAD} == set(VARIABLES)


# --- the YAML file --------------------------------------------------------------------


def test_every_key_from_yaml(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
server_port: 9001
store_shard_count: 16
store_gc_interval: 10s
rate_limit: 7
window_size: 5m
rate_limit_algorithm: fixed_window
store_url: redis://cache:6379/2
store_max_keys: 500
profiling_addr: off
trusted_proxies: [10.0.0.0/8, "fd00::/8", 192.168.0.1]
web_concurrency: 3
""",
    )
    assert load_settings({}, config_file=path) == Settings(
        server_port=9001,
        store_shard_count=16,
        store_gc_interval=10.0,
        rate_limit=7,
        window_size=300.0,
        rate_limit_algorithm="fixed_window",
        store_url="redis://cache:6379/2",
        store_max_keys=500,
        profiling_addr=None,
        trusted_proxies=("10.0.0.0/8", "fd00::/8", "192.168.0.1/32"),
        web_concurrency=3,
        config_file=str(path),
    )


def test_yaml_numbers_are_seconds_and_strings_work_too(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'window_size: 90\nstore_gc_interval: 0\nrate_limit: "12"\n'
        'trusted_proxies: "10.0.0.1, 10.0.0.2"\nprofiling_addr: "[::1]:7070"\n',
    )
    settings = load_settings({}, config_file=path)
    assert settings.window_size == 90.0
    assert settings.store_gc_interval == 0.0
    assert settings.rate_limit == 12
    assert settings.trusted_proxies == ("10.0.0.1/32", "10.0.0.2/32")
    assert settings.profiling_addr == "[::1]:7070"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rate_limt: 5\n", "unknown key 'rate_limt'; valid keys are "),
        ("RATE_LIMIT: 5\n", "unknown key 'RATE_LIMIT'; valid keys are "),
        ("rate_limit: 2.5\n", "rate_limit=2.5 is not valid; expected a whole number"),
        ("rate_limit: true\n", "rate_limit=True is not valid"),
        ("rate_limit: [1]\n", "rate_limit=[1] is not valid"),
        ("window_size: soon\n", "window_size='soon' is not valid; expected a duration"),
        ("window_size: -1\n", "window_size=-1 is not valid"),
        ("store_gc_interval: true\n", "store_gc_interval=True is not valid"),
        ("rate_limit_algorithm: gcra\n", "rate_limit_algorithm='gcra' is not valid"),
        ("server_port: 99999\n", "server_port=99999 is not valid; expected a TCP port"),
        ("profiling_addr: 6060\n", "profiling_addr=6060 is not valid; expected host"),
        ("trusted_proxies: {a: 1}\n", "trusted_proxies={'a': 1} is not valid"),
        ("trusted_proxies: [10.0.0.0/8, nope]\n", "'nope' is not an IP address"),
        ("store_url: 42\n", "store_url=42 is not valid; expected memory://"),
        ("- rate_limit: 5\n", "expected a mapping of settings at the top level"),
        ("trusted_proxies: [[10.0.0.1]]\n", "['10.0.0.1'] is not an IP address"),
        ("rate_limit: " + "9" * 5000 + "\n", "not valid YAML"),
        ("rate_limit: " + "[" * 5000 + "\n", "not valid YAML"),
        ("rate_limit: [5\n", "not valid YAML"),
    ],
)
def test_a_bad_file_names_the_file_the_key_and_the_value(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings({}, config_file=path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"rate_limit: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"config\.yaml: not UTF-8 text"):
        load_settings({}, config_file=path)


def test_values_from_a_file_are_shown_shortened(tmp_path: Path) -> None:
    # Six levels of aliases: 300 bytes of YAML holding half a million strings.
    levels = ["&l0 [x, x, x, x, x, x, x, x, x]"] + [
        f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 6)
    ]
    path = write(tmp_path, f"rate_limit: [{', '.join(levels)}]\n")
    with pytest.raises(ConfigError, match="rate_limit=") as caught:
        load_settings({}, config_file=path)
    assert len(str(caught.value)) < 1000
    long_value = write(tmp_path, "store_url: " + "x" * 10_000 + "\n", "long.yaml")
    with pytest.raises(ConfigError, match="store_url=") as caught:
        load_settings({}, config_file=long_value)
    assert len(str(caught.value)) < 1000


def test_unknown_key_lists_the_valid_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "colour: blue\n")
    with pytest.raises(ConfigError, match="colour") as caught:
        load_settings({}, config_file=path)
    for name in VARIABLES:
        assert name.lower() in str(caught.value)


def test_a_missing_file_is_an_error_naming_where_it_was_asked_for(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match=r"^environment: CONFIG_FILE: .*absent\.yaml"):
        load_settings({"CONFIG_FILE": str(missing)})
    with pytest.raises(ConfigError, match=r"^config_file argument: .*absent\.yaml"):
        load_settings({}, config_file=missing)


# --- precedence -----------------------------------------------------------------------


def test_precedence_defaults_then_yaml_then_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "rate_limit: 10\nwindow_size: 10s\n")
    env = {"CONFIG_FILE": str(path), "RATE_LIMIT": "20"}

    settings = load_settings(env)

    assert settings.rate_limit == 20  # environment beats the file
    assert settings.window_size == 10.0  # the file beats the defaults
    assert settings.server_port == DEFAULTS.server_port  # defaults fill the rest
    assert settings.config_file == str(path)


def test_the_argument_beats_config_file_which_beats_the_checkout(
    tmp_path: Path,
) -> None:
    named = write(tmp_path, "rate_limit: 1\n", "named.yaml")
    argument = write(tmp_path, "rate_limit: 2\n", "argument.yaml")
    assert load_settings({"CONFIG_FILE": str(named)}).rate_limit == 1
    assert load_settings({"CONFIG_FILE": str(named)}, argument).rate_limit == 2


def test_the_environment_defaults_to_os_environ(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RATE_LIMIT", "33")
    assert load_settings().rate_limit == 33


def test_an_error_in_the_environment_is_reported_even_with_a_good_file(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "rate_limit: 10\n")
    with pytest.raises(ConfigError, match=r"^environment: RATE_LIMIT='x'"):
        load_settings({"RATE_LIMIT": "x"}, config_file=path)


# --- using the settings ---------------------------------------------------------------


def test_make_limiter_builds_the_configured_limiter(clock: ManualClock) -> None:
    settings = load_settings(
        {
            "RATE_LIMIT": "2",
            "WINDOW_SIZE": "30s",
            "RATE_LIMIT_ALGORITHM": "fixed_window",
            "STORE_SHARD_COUNT": "8",
            "STORE_MAX_KEYS": "10",
            "STORE_GC_INTERVAL": "0",
        }
    )
    with settings.make_limiter(clock=clock) as limiter:
        assert limiter.rates == (Rate(2, 30.0),)
        assert limiter.algorithm == "fixed_window"
        assert limiter.storage_url == "memory://"
        stats = limiter.stats()
        assert stats["shards"] == 8
        assert stats["max_keys"] == 10
        assert stats["gc"]["running"] is False
        assert [bool(limiter.hit("k")) for _ in range(3)] == [True, True, False]


def test_make_limiter_starts_the_gc_thread_when_asked() -> None:
    with load_settings({"STORE_GC_INTERVAL": "1h"}).make_limiter() as limiter:
        assert limiter.stats()["gc"]["running"] is True
        assert limiter.stats()["gc"]["interval"] == 3600.0


def test_as_environment_round_trips(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "STORE_GC_INTERVAL": "250ms",
            "PROFILING_ADDR": "off",
            "TRUSTED_PROXIES": "10.0.0.0/8,fd00::/8",
            "WINDOW_SIZE": "1.5",
        }
    )
    env = settings.as_environment()
    assert env["STORE_GC_INTERVAL"] == "250ms"
    assert env["PROFILING_ADDR"] == "off"
    assert load_settings(env) == settings


def test_shardlimit_config_prints_the_settings_or_the_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RATE_LIMIT", "5")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "RATE_LIMIT=5\n" in out
    assert "WINDOW_SIZE=60s\n" in out

    monkeypatch.setenv("WINDOW_SIZE", "forever")
    assert main(["config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("shardlimit: environment: WINDOW_SIZE='forever' is not valid")
