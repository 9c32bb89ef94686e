"""Access control: loopback by default, an access token for anything else.

With a token every request must carry it: as ``Authorization: Bearer <token>``, as an
``X-Genesis-Token`` header, or once as ``?token=``, which sets the ``genesis_view`` cookie (a
hash of the token) and redirects to the same address without it, so the token does not
stay in the address bar or the history. Tokens are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Receive, Scope, Send

from genesis.database.errors import ConfigurationError

__all__ = ["COOKIE", "TOKEN_ENV", "TokenGate", "check_bind", "cookie_value", "is_loopback"]

TOKEN_ENV = "GENESIS_VIEW_TOKEN"
COOKIE = "genesis_view"


def is_loopback(host: str) -> bool:
    """True if ``host`` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> str | None:
    """Return the token to require (from the argument or GENESIS_VIEW_TOKEN).

    Refuses, with ConfigurationError, to bind anywhere but loopback without one.
    """
    token = token or os.environ.get(TOKEN_ENV) or None
    if token is not None and len(token) < 8:
        raise ConfigurationError("the view's access token must be at least 8 characters")
    if token is None and not is_loopback(host):
        raise ConfigurationError(
            f"refusing to serve on {host} without an access token: pass --token or set "
            f"{TOKEN_ENV} (or bind to 127.0.0.1)")
    return token


class TokenGate:
    """ASGI middleware admitting only requests that carry the token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()
        self._cookie = cookie_value(token).encode()

    def _matches(self, candidate: str | None, expected: bytes | None = None) -> bool:
        return candidate is not None and hmac.compare_digest(
            candidate.encode(), self._token if expected is None else expected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # the view serves none: refuse them all
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        bearer = headers.get("authorization", "")
        cookie = SimpleCookie(headers.get("cookie", "")).get(COOKIE)
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                          keep_blank_values=True)
        offered = dict(query).get("token")
        if self._matches(offered):
            await _redirect_with_cookie(scope, send, [(k, v) for k, v in query if k != "token"],
                                        self._cookie.decode())
            return
        if (self._matches(bearer[7:] if bearer.lower().startswith("bearer ") else None)
                or self._matches(headers.get("x-genesis-token"))
                or self._matches(cookie.value if cookie else None, self._cookie)):
            await self.app(scope, receive, send)
            return
        await _send(send, 401, b"access token required\n",
                    [(b"content-type", b"text/plain; charset=utf-8"),
                     (b"www-authenticate", b'Bearer realm="genesis view"')])


def cookie_value(token: str) -> str:
    """Return the cookie that stands for ``token`` (its salted SHA-256, in hex)."""
    return hashlib.sha256(b"genesis-view:" + token.encode()).hexdigest()


async def _redirect_with_cookie(scope: Scope, send: Send, query: list[tuple[str, str]],
                                value: str) -> None:
    location = scope.get("root_path", "") + scope["path"]
    if query:
        location += "?" + urlencode(query)
    cookie = f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict"
    await _send(send, 303, b"", [(b"location", location.encode("latin-1")),
                                 (b"set-cookie", cookie.encode("latin-1"))])


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
