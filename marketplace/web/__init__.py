"""What the HTTP controllers share: the caller and the guards, dependency wiring, idempotent requests,
pagination and query types, problem details."""
