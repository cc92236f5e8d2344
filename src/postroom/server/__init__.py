"""``postroom serve``: the HTTP API, dashboard, ``/metrics`` and ``/healthz``.

Install with ``pip install 'postroom[server]'``. :func:`create_app` builds the
ASGI app over one :class:`postroom.AsyncClient`; tokens and limits are described
in ``docs/http.md``.
"""

from __future__ import annotations

from ._app import create_app
from ._auth import Token, check_bind, load_tokens_file, parse_tokens_env
from ._guard import default_hosts
from ._receipts import HttpReceipt

__all__ = [
    "HttpReceipt",
    "Token",
    "check_bind",
    "create_app",
    "default_hosts",
    "load_tokens_file",
    "parse_tokens_env",
]
