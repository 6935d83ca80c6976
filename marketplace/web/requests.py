"""Requests as the service reads them: each has an id, on its answer and its log lines; a JSON body nested
deeper than the decoder goes is the client's error (400), never a crash with a traceback in the log."""

from __future__ import annotations

import re
import uuid
from typing import Any

from litestar import Request
from litestar.enums import ScopeType
from litestar.exceptions import ClientException
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from marketplace.kit.logs import REQUEST_ID


class ServiceRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        try:
            return await super().json()
        except RecursionError:
            raise ClientException("the JSON body is nested too deeply") from None


# An id the client sends is kept when it is a short token (so a trace can cross services), else one is made.
_CLIENT_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")


def request_ids(app: ASGIApp) -> ASGIApp:
    """Every HTTP request gets an id: in `X-Request-Id` on its answer and on every log line written while it
    is served (`kit.logs.REQUEST_ID`)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        sent = dict(scope.get("headers", [])).get(b"x-request-id", b"")
        request_id = sent.decode() if _CLIENT_REQUEST_ID.match(sent) else uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)

    return middleware
