"""Progress of a long piece of work (the demo, settlement, impact analysis), reported as it goes.

The work calls a `Progress` with the step it is on, how much of it is done and, when it knows, how much
there is; the command line draws that as progress bars on a terminal, everyone else passes `unreported`."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def __call__(self, step: str, done: int, total: int | None = None) -> None: ...


def unreported(step: str, done: int, total: int | None = None) -> None:
    """Nobody is watching."""
