"""The ``shardlimit`` command (also ``python -m shardlimit``).

``shardlimit serve [gunicorn options]``
    Serve the demo app (``shardlimit.demo:app``) with gunicorn and
    ``configs/gunicorn.conf.py``: the file of the source checkout the package was
    installed from, else ``./configs/gunicorn.conf.py``; ``-c PATH`` names another.
    Other options go to gunicorn as they are (``--preload``, ``--bind``, ...).
``shardlimit config``
    Print the settings the demo would run with, as environment variables, or the
    error that would stop it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import shardlimit
from shardlimit.config import load_settings
from shardlimit.errors import ConfigError

__all__ = ["main"]

APP = "shardlimit.demo:app"
_CONF = Path("configs") / "gunicorn.conf.py"


def find_gunicorn_conf() -> Path | None:
    """Return the checkout's ``configs/gunicorn.conf.py``, else the cwd's, else None."""
    checkout = Path(__file__).resolve().parents[2] / _CONF
    for candidate in (checkout, Path.cwd() / _CONF):
        if candidate.is_file():
            return candidate
    return None


def _names_config(args: Sequence[str]) -> bool:
    return any(a in ("-c", "--config") or a.startswith("--config=") for a in args)


def serve(args: Sequence[str]) -> int:
    """Run gunicorn on the demo app with ``args``; gunicorn exits the process."""
    args = list(args)
    if not _names_config(args):
        conf = find_gunicorn_conf()
        if conf is None:
            print(
                f"shardlimit serve: {_CONF} not found (in the source checkout or the "
                "current directory); pass -c PATH",
                file=sys.stderr,
            )
            return 2
        args = ["-c", str(conf), *args]
    try:
        from gunicorn.app.wsgiapp import (  # type: ignore[import-untyped]  # noqa: PLC0415
            WSGIApplication,
        )
    except ImportError:
        print(
            "shardlimit serve needs gunicorn: pip install 'shardlimit[server]'",
            file=sys.stderr,
        )
        return 2
    sys.argv = ["shardlimit serve", *args, APP]
    # gunicorn exits through SystemExit, with its own status, when the server stops.
    WSGIApplication("%(prog)s [OPTIONS]", prog="shardlimit serve").run()
    return 0


def show_config() -> int:
    """Print the effective settings as environment variables; 2 if they are invalid."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"shardlimit: {exc}", file=sys.stderr)
        return 2
    print(f"# from {settings.config_file or 'built-in defaults'}, then the environment")
    for name, value in settings.as_environment().items():
        print(f"{name}={value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``shardlimit`` command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="shardlimit", description="shardlimit demo server and tools."
    )
    parser.add_argument("--version", action="version", version=shardlimit.__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "serve",
        help="serve the demo app with gunicorn (other options go to gunicorn)",
        add_help=False,
    )
    commands.add_parser("config", help="print the effective settings")
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve"]:
        return serve(args[1:])  # every option after `serve` is gunicorn's
    parser.parse_args(args)
    return show_config()


if __name__ == "__main__":
    sys.exit(main())
