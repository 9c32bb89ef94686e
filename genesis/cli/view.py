"""``genesis view``: serve a read-only web view of a run (pages, JSON API, metrics)."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace

from genesis.database.errors import ConfigurationError
from genesis.database.url import DEFAULT_RUN, DatabaseURL, resolve_url
from genesis.ops.stores import as_url

__all__ = ["register", "serve", "view_command"]

EXAMPLES = """\
examples:
  genesis view                                      # DATABASE_URL, else ./genesis_data/evolution.db
  genesis view results/evolution_db.sqlite          # a SQLite file
  genesis view postgresql://genesis@db/genesis      # every run of a database, chosen from a list
  genesis view postgresql://genesis@db/genesis --run demo_2
  GENESIS_VIEW_TOKEN=... genesis view --host 0.0.0.0   # other machines: a token is required
"""


def register(commands: argparse._SubParsersAction) -> None:
    """Add the ``view`` command."""
    parser = commands.add_parser(
        "view", help="serve a live, read-only web view of a run",
        description="Serve a read-only web view of a run (or of every run of a PostgreSQL "
                    "database): pages, a JSON API under /api/ and Prometheus metrics at "
                    "/metrics. Binds to 127.0.0.1 unless told otherwise; any other address "
                    "needs an access token.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", nargs="?", help="database URL or SQLite file path (default: "
                                               "DATABASE_URL, else $GENESIS_DATA_DIR/evolution.db)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (8765)")
    parser.add_argument("--run", help="serve only this PostgreSQL run (default: the run in the "
                                      "URL, else a list of every run)")
    parser.add_argument("--token", help="access token every request must carry (default: "
                                        "GENESIS_VIEW_TOKEN); required off loopback")
    parser.set_defaults(handler=serve)


def view_command(url: DatabaseURL) -> str:
    """Return the command that serves the view of ``url``'s run (the password left out)."""
    if url.is_sqlite:
        return f"genesis view {url}"
    if os.environ.get("DATABASE_URL"):
        return f"genesis view --run {url.run}    # the database of DATABASE_URL"
    command = f"genesis view '{replace(url, run=DEFAULT_RUN)}' --run {url.run}"
    return command + ("    # with the password instead of ***" if url.password else "")


def view_url(host: str = "127.0.0.1", port: int = 8765) -> str:
    """Return the address a browser opens for a view served on ``host:port``."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{f'[{shown}]' if ':' in shown else shown}:{port}/"


def serve(args: argparse.Namespace) -> int:
    """Serve the view until interrupted."""
    try:
        import uvicorn

        from genesis.view import create_app
        from genesis.view.security import check_bind
    except ImportError as exc:
        raise ConfigurationError(f"genesis view needs the 'view' extra ({exc.name} is missing): "
                                 'pip install "genesis-evolve[view]" (".[view]" in a checkout)'
                                 ) from None
    url = resolve_url() if args.url is None else as_url(args.url)
    token = check_bind(args.host, args.token)
    app = create_app(url, run=args.run, token=token)
    print(f"genesis view of {url}{f' (run {args.run})' if args.run else ''} at "
          f"{view_url(args.host, args.port)}{' (token required)' if token else ''}",
          flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning",
                timeout_graceful_shutdown=2)
    return 0
