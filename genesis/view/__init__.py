"""``genesis view``: a read-only web view of a run, its JSON API and Prometheus metrics.

Needs the ``view`` extra (``pip install "genesis-evolve[view]"``): Starlette, uvicorn,
Jinja2 and prometheus-client. Pages are rendered on the server (SVG figures included) and
need nothing from the network.
"""

from genesis.view.app import create_app

__all__ = ["create_app"]
