"""The HTTP API: one module of Litestar controllers per area; each handler parses, guards, calls one flow or
service, and returns."""
