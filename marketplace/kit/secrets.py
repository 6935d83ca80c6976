"""Key material kept on disk: created once, atomically, readable only by the service's user."""

import os
from collections.abc import Callable
from pathlib import Path


def load_or_create(path: Path, create: Callable[[], bytes]) -> bytes:
    """Several workers may start at once: O_EXCL lets exactly one of them write the file."""
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(create())
    try:
        os.link(tmp, path)  # fails if another worker won the race; then we read its key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes()
