"""Who may use the lab: the password (`--auth`, `--auth-file` or `$CONTEXTRAST_AUTH`), the host rule,
and a middleware that keeps the page from describing the lab to a visitor who has not logged in.

Gradio's login page is its ordinary page with an empty layout, but it still embeds the API
description of every endpoint (model and sample names, default values, cache paths). `LoginFirst`
replaces that description with an empty one for requests without a valid login cookie; after login
the page, `/config` and the API are Gradio's own.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

AUTH_ENV = "CONTEXTRAST_AUTH"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
API_INFO = re.compile(rb"window\.gradio_api_info = .*?;</script>", re.DOTALL)
EMPTY_API_INFO = b'window.gradio_api_info = {"named_endpoints":{},"unnamed_endpoints":{}};</script>'


def parse_auth(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    user, sep, password = text.strip().partition(":")
    if not sep or not user or not password:
        raise ValueError("a login must look like user:password")
    return user, password


def resolve_auth(auth: str | None, auth_file: str | None = None) -> tuple[str, str] | None:
    """The login from `--auth USER:PASS`, else the first line of `--auth-file`, else `$CONTEXTRAST_AUTH`.
    A password given as an argument is visible to other users of the machine (`ps`); the file and the
    environment variable are not."""
    if auth:
        return parse_auth(auth)
    if auth_file:
        path = Path(auth_file)
        try:
            text = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read --auth-file {path}: {getattr(e, 'strerror', None) or e}") from None
        if not text:
            raise ValueError(f"--auth-file {path} is empty; write user:password on its first line")
        return parse_auth(text[0])
    return parse_auth(os.environ.get(AUTH_ENV))


def check_host(host: str, auth: tuple[str, str] | None, insecure: bool) -> None:
    """Serving beyond this machine needs a password (or an explicit --insecure)."""
    if host not in LOCAL_HOSTS and auth is None and not insecure:
        raise ValueError(f"--host {host} exposes the lab to the network: add --auth-file FILE (or --auth user:password, "
                         f"or ${AUTH_ENV}), or --insecure if you really mean an open server")


def _logged_in(app: Any, headers: list[tuple[bytes, bytes]]) -> bool:
    cookies = b"; ".join(v for k, v in headers if k.lower() == b"cookie").decode("latin-1")
    names = (f"access-token-{app.cookie_id}", f"access-token-unsecure-{app.cookie_id}")
    for part in cookies.split(";"):
        name, _, value = part.strip().partition("=")
        if name in names and value in app.tokens:
            return True
    return False


class LoginFirst:
    """ASGI middleware: an anonymous GET of the page gets it without the API description."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        gradio_app = scope.get("app")
        if (scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD") or scope.get("path") != "/"
                or getattr(gradio_app, "auth", None) is None or _logged_in(gradio_app, scope.get("headers", []))):
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        body: list[bytes] = []

        async def keep(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            body.append(message.get("body", b""))
            if message.get("more_body"):
                return
            content = API_INFO.sub(EMPTY_API_INFO, b"".join(body), count=1)
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(content)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": content if scope["method"] == "GET" else b""})

        await self.app(scope, receive, keep)
