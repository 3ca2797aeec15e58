"""Settings of the demo server: built-in defaults, then a YAML file, then environment.

:func:`load_settings` reads, in increasing order of precedence:

1. the built-in defaults (:data:`DEFAULTS`, the same values as ``configs/config.yaml``);
2. a YAML file: ``config_file`` if given, else ``$CONFIG_FILE`` if set, else the
   ``configs/config.yaml`` of the source checkout the package was installed from
   (an editable install). A wheel ships no YAML file: with neither argument nor
   ``CONFIG_FILE`` it runs on the built-in defaults, which are the same values;
3. the environment variables of :data:`VARIABLES`.

The YAML keys are the variable names in lower case (``rate_limit: 100``). Every bad
value stops start-up with one :class:`~shardlimit.ConfigError` naming where it came
from (the file's path, or ``environment``), the key, the value and what would be valid.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from shardlimit.errors import ConfigError
from shardlimit.limiter import ALGORITHMS, Limiter
from shardlimit.profiling import parse_profiling_addr
from shardlimit.rates import MAX_LIMIT, MAX_PERIOD, Rate, parse_duration

__all__ = [
    "DEFAULTS",
    "VARIABLES",
    "Settings",
    "default_config_file",
    "load_settings",
    "parse_trusted_proxies",
]

_MIN_PERIOD = 1e-9  # one nanosecond, the clock's resolution
_MAX_DIGITS = 30  # more digits exceed every bound (and int() refuses 4300 and more)

# Values from a file are shown shortened: YAML aliases can make a 300-byte file hold
# millions of strings, which a full repr() would write into the message.
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 120
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 6
_SHORT.maxlevel = 2
_STORE_SCHEMES = ("memory", "redis", "rediss", "redis+cluster")


@dataclass(frozen=True, slots=True)
class Settings:
    """The demo server's configuration; one field per environment variable.

    Build it with :func:`load_settings`; construct it directly only in tests. Fields
    hold parsed values: durations in seconds, ``profiling_addr`` ``None`` when off,
    ``trusted_proxies`` as normalised network strings (``"10.0.0.0/8"``).
    """

    server_port: int = 8080
    store_shard_count: int = 64
    store_gc_interval: float = 30.0
    rate_limit: int = 100
    window_size: float = 60.0
    rate_limit_algorithm: str = "sliding_window"
    store_url: str = "memory://"
    store_max_keys: int = 1_000_000
    profiling_addr: str | None = "127.0.0.1:6060"
    trusted_proxies: tuple[str, ...] = ()
    web_concurrency: int = 1
    #: The YAML file the settings were read from, or ``None``. Not a variable.
    config_file: str | None = None

    @property
    def rate(self) -> Rate:
        """Return the rate the settings describe: ``rate_limit`` per ``window_size``."""
        return Rate(self.rate_limit, self.window_size)

    @property
    def uses_memory_store(self) -> bool:
        """Return whether the limiter keeps its counts in this process's memory."""
        return self.store_url.startswith("memory:")

    def make_limiter(self, **overrides: Any) -> Limiter:
        """Build the :class:`~shardlimit.Limiter` these settings describe.

        Keyword arguments are passed on to ``Limiter`` and win over the settings
        (tests give ``clock=ManualClock()`` this way).
        """
        options: dict[str, Any] = {
            "algorithm": self.rate_limit_algorithm,
            "storage": self.store_url,
            "gc_interval": self.store_gc_interval or None,
            "max_keys": self.store_max_keys,
        }
        if self.uses_memory_store:
            options["shards"] = self.store_shard_count
        options.update(overrides)
        return Limiter(self.rate, **options)

    def as_environment(self) -> dict[str, str]:
        """Return the settings as the environment variables that would produce them."""
        env: dict[str, str] = {}
        for var, spec in VARIABLES.items():
            env[var] = spec.render(getattr(self, spec.field))
        return env


#: The built-in defaults, used when no YAML file is found.
DEFAULTS = Settings()


# --- parsing of single values --------------------------------------------------------


class _Invalid(Exception):  # noqa: N818 - internal signal, never escapes this module
    """A value did not parse; the message says what would be valid."""


def _parse_int(value: object, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise _Invalid
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(
        rf"\s*\d{{1,{_MAX_DIGITS}}}\s*", value
    ):
        number = int(value)
    else:
        raise _Invalid
    if not low <= number <= high:
        raise _Invalid
    return number


def _int_field(low: int, high: int, valid: str) -> Callable[[object], int]:
    def parse(value: object) -> int:
        try:
            return _parse_int(value, low, high)
        except _Invalid:
            raise _Invalid(valid) from None

    return parse


def _duration_field(*, positive: bool, valid: str) -> Callable[[object], float]:
    def parse(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise _Invalid(valid)
        try:
            seconds = parse_duration(value)
        except ConfigError:
            raise _Invalid(valid) from None
        if positive and not _MIN_PERIOD <= seconds <= MAX_PERIOD:
            raise _Invalid(valid)
        return seconds

    return parse


def _parse_algorithm(value: object) -> str:
    if isinstance(value, str) and value.strip() in ALGORITHMS:
        return value.strip()
    raise _Invalid("one of " + ", ".join(ALGORITHMS))


def _parse_store_url(value: object) -> str:
    valid = (
        "memory:// or a redis://, rediss:// or redis+cluster:// URL "
        "(for example redis://localhost:6379/0)"
    )
    if not isinstance(value, str):
        raise _Invalid(valid)
    url = value.strip()
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _STORE_SCHEMES:
        raise _Invalid(valid)
    if scheme.lower() == "memory" and rest:
        raise _Invalid(valid)
    if scheme.lower() != "memory" and not rest.split("/", 1)[0].rsplit("@", 1)[-1]:
        raise _Invalid(valid)
    return url


def _parse_addr(value: object) -> str | None:
    valid = "host:port (such as 127.0.0.1:6060, [::1]:6060 or :6060) or off"
    if value is None or value is False:
        return None  # YAML reads a bare `off` as false
    if not isinstance(value, str):
        raise _Invalid(valid)
    try:
        bind = parse_profiling_addr(value)
    except ConfigError:
        raise _Invalid(valid) from None
    return None if bind is None else value.strip()


def parse_trusted_proxies(value: object) -> tuple[str, ...]:
    """Parse proxy addresses and networks (IPv4 or IPv6, CIDR or single addresses).

    Accepts a string separated by commas or whitespace, or a list of strings. Returns
    normalised network strings (``"10.0.0.1"`` becomes ``"10.0.0.1/32"``); raises
    :class:`ValueError` naming the first entry that is neither.
    """
    if isinstance(value, str):
        items: list[object] = [part for part in re.split(r"[\s,]+", value) if part]
    elif isinstance(value, list | tuple):
        items = list(value)
    elif value is None:
        items = []
    else:
        raise ValueError(
            f"expected a list of addresses or networks, got {_SHORT.repr(value)}"
        )
    networks: list[str] = []
    for item in items:
        network = _network(item)
        if network is None:
            raise ValueError(f"{_SHORT.repr(item)} is not an IP address or network")
        networks.append(network)
    return tuple(networks)


def _network(item: object) -> str | None:
    if not isinstance(item, str):
        return None
    try:
        return str(ipaddress.ip_network(item.strip(), strict=False))
    except ValueError:
        return None


def _parse_proxies(value: object) -> tuple[str, ...]:
    try:
        return parse_trusted_proxies(value)
    except ValueError as exc:
        raise _Invalid(
            "IP addresses or CIDR networks separated by commas, such as "
            f"10.0.0.0/8, 192.168.1.10, fd00::/8 ({exc})"
        ) from None


@dataclass(frozen=True, slots=True)
class _Variable:
    field: str
    parse: Callable[[object], Any]
    render: Callable[[Any], str] = str


def _render_duration(seconds: float) -> str:
    if seconds >= 1 and math.isclose(seconds, round(seconds)):
        return f"{round(seconds)}s"
    return f"{round(seconds * 1000)}ms"


#: Environment variable name -> how it parses and which :class:`Settings` field it sets.
VARIABLES: dict[str, _Variable] = {
    "SERVER_PORT": _Variable(
        "server_port", _int_field(1, 65535, "a TCP port number from 1 to 65535")
    ),
    "STORE_SHARD_COUNT": _Variable(
        "store_shard_count",
        _int_field(1, 65536, "a whole number of shards from 1 to 65536"),
    ),
    "STORE_GC_INTERVAL": _Variable(
        "store_gc_interval",
        _duration_field(
            positive=False,
            valid="a duration such as 250ms, 30s, 5m, 1h; 0 turns GC off",
        ),
        _render_duration,
    ),
    "RATE_LIMIT": _Variable(
        "rate_limit",
        _int_field(1, MAX_LIMIT, f"a whole number of requests from 1 to {MAX_LIMIT}"),
    ),
    "WINDOW_SIZE": _Variable(
        "window_size",
        _duration_field(
            positive=True,
            valid="a duration from 1ns to 10 years, such as 250ms, 30s, 5m, 1h, 1d",
        ),
        _render_duration,
    ),
    "RATE_LIMIT_ALGORITHM": _Variable("rate_limit_algorithm", _parse_algorithm),
    "STORE_URL": _Variable("store_url", _parse_store_url),
    "STORE_MAX_KEYS": _Variable(
        "store_max_keys",
        _int_field(1, 2**63 - 1, "a whole number of keys of at least 1"),
    ),
    "PROFILING_ADDR": _Variable(
        "profiling_addr", _parse_addr, lambda addr: "off" if addr is None else addr
    ),
    "TRUSTED_PROXIES": _Variable("trusted_proxies", _parse_proxies, ",".join),
    "WEB_CONCURRENCY": _Variable(
        "web_concurrency",
        _int_field(1, 1024, "a whole number of worker processes from 1 to 1024"),
    ),
}
_YAML_KEYS = {name.lower(): name for name in VARIABLES}


# --- sources -------------------------------------------------------------------------


def default_config_file() -> Path | None:
    """Return ``configs/config.yaml`` of the source checkout, if the package has one.

    An editable install imports the package from ``<checkout>/python/shardlimit``, so
    the file is two directories up. An installed wheel has no checkout: ``None``.
    """
    candidate = Path(__file__).resolve().parents[2] / "configs" / "config.yaml"
    return candidate if candidate.is_file() else None


def _parse_value(
    source: str, key: str, var: str, value: object, show: Callable[[object], str]
) -> tuple[str, Any]:
    spec = VARIABLES[var]
    try:
        return spec.field, spec.parse(value)
    except _Invalid as exc:
        valid = str(exc) or "a valid value"
        raise ConfigError(
            f"{source}: {key}={show(value)} is not valid; expected {valid}"
        ) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        import yaml  # noqa: PLC0415 - optional dependency, needed only with a file
    except ImportError:
        raise ConfigError(
            f"{path}: reading a YAML config file needs PyYAML "
            "(pip install 'shardlimit[yaml]')"
        ) from None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the config file ({exc.strerror})"
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from None
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        # ValueError: an integer of more than 4300 digits; RecursionError: nesting.
        reason = _SHORT.repr(str(exc)).strip("'\"")
        raise ConfigError(f"{path}: not valid YAML ({reason})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of settings at the top level, "
            f"got {type(data).__name__}"
        )
    return data


def _from_yaml(path: Path) -> dict[str, Any]:
    values: dict[str, Any] = {}
    source = str(path)
    for key, value in _read_yaml(path).items():
        var = _YAML_KEYS.get(key) if isinstance(key, str) else None
        if var is None:
            raise ConfigError(
                f"{source}: unknown key {_SHORT.repr(key)}; valid keys are "
                + ", ".join(sorted(_YAML_KEYS))
            )
        name, parsed = _parse_value(source, key, var, value, _SHORT.repr)
        values[name] = parsed
    return values


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for var in VARIABLES:
        if var in environ:
            name, parsed = _parse_value("environment", var, var, environ[var], repr)
            values[name] = parsed
    return values


def _choose_file(
    environ: Mapping[str, str], config_file: str | os.PathLike[str] | None
) -> Path | None:
    if config_file is not None:
        path, origin = Path(config_file), "config_file argument"
    elif environ.get("CONFIG_FILE"):
        path, origin = Path(environ["CONFIG_FILE"]), "environment: CONFIG_FILE"
    else:
        return default_config_file()
    if not path.is_file():
        raise ConfigError(f"{origin}: config file {str(path)!r} does not exist")
    return path


def load_settings(
    environ: Mapping[str, str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
) -> Settings:
    """Read the settings: built-in defaults, then the YAML file, then the environment.

    ``environ`` defaults to :data:`os.environ`; ``config_file`` to ``$CONFIG_FILE``,
    then the checkout's ``configs/config.yaml``, then none. Raises
    :class:`~shardlimit.ConfigError` with one message naming the source, the key,
    the value and what would be valid.
    """
    env = os.environ if environ is None else environ
    settings = DEFAULTS

    path = _choose_file(env, config_file)
    if path is not None:
        settings = replace(settings, config_file=str(path), **_from_yaml(path))

    return replace(settings, **_from_environment(env))
