"""Orders: the trade lifecycle behind the compliance gate, and idempotent requests."""
