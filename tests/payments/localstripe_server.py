"""Run localstripe (the fake Stripe server from the package index) on the loopback interface, for the
tests: `python localstripe_server.py` prints the port it listens on, then serves until terminated.

localstripe's own `start()` listens on every interface and keeps its state in a fixed file under
/tmp (shared by every run on the machine). This launcher binds 127.0.0.1 on a free port and keeps
its state in memory only.

localstripe 1.15 predates two PaymentIntent parameters the gateway sends and would refuse them
("Unexpected ..."): `transfer_group` (separate charges and transfers) and `automatic_payment_methods`.
The launcher lets PaymentIntents take both and return them as given; nothing else is changed."""

from __future__ import annotations

import socket
import sys
from typing import Any

from aiohttp import web
from localstripe import resources, server


def accept_newer_payment_intent_parameters() -> None:
    original = resources.PaymentIntent.__init__

    def __init__(
        self: Any,
        transfer_group: str | None = None,
        automatic_payment_methods: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        original(self, **kwargs)
        self.transfer_group = transfer_group
        self.automatic_payment_methods = automatic_payment_methods

    resources.PaymentIntent.__init__ = __init__  # type: ignore[method-assign]


def main() -> None:
    accept_newer_payment_intent_parameters()
    resources.store.dump_to_disk = lambda: None  # state in memory only
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)  # noqa: T201 - the port, for the test fixture
    web.run_app(server.app, sock=sock, print=None, access_log=None)


if __name__ == "__main__":
    sys.exit(main())
