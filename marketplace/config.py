"""Settings: the only place where environment variables are read."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./marketplace.db"


def _read_dotenv(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines of a .env file; the process environment wins over it."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


@dataclass(frozen=True)
class Settings:
    """Every setting with its default; `docs` in the README mirrors this table."""

    database_url: str = DEFAULT_DATABASE_URL
    storage_dir: Path = Path("./var")
    rulebook_path: Path | None = None
    payment_gateway: str = "local"
    stripe_api_key: str | None = field(default=None, repr=False)
    stripe_webhook_secret: str | None = field(default=None, repr=False)
    stripe_api_base: str | None = None
    platform_fee_bps: int = 500
    # An accepted order not paid within this window is cancelled and its licence released.
    order_payment_window_seconds: int = 86_400
    # A delivered order the buyer neither confirms nor disputes within this window completes by itself.
    order_confirm_window_seconds: int = 604_800
    # An idempotent request still marked running after this long is taken to have died.
    idempotency_lock_seconds: int = 60
    jwt_issuer: str = "marketplace"
    jwt_audience: str = "marketplace-api"
    jwt_ttl_seconds: int = 900
    jwt_key_path: Path | None = None
    jwt_retired_public_keys: tuple[Path, ...] = ()
    login_failure_window_seconds: int = 60
    login_max_failures_per_account: int = 5
    login_max_failures_per_address: int = 20
    max_request_body_bytes: int = 1_048_576
    max_sample_bytes: int = 10_485_760
    # Delivery: the largest dataset a provider may upload, how long a signed download link lives (at most
    # 15 minutes) and the key that signs new links (older key files still verify until removed), the
    # smallest group an aggregate may reveal, and the calls per minute of one API access key.
    max_dataset_bytes: int = 4 * 1024**3
    download_link_ttl_seconds: int = 900
    download_key_id: str = "dl1"
    aggregate_min_group_size: int = 10
    access_key_rate_limit_per_minute: int = 120
    database_pool_size: int = 10
    log_level: str = "INFO"
    log_json: bool = True

    @property
    def signing_key_path(self) -> Path:
        return self.jwt_key_path or self.storage_dir / "keys" / "jwt-ed25519.pem"

    @property
    def secret_key_path(self) -> Path:
        """Random key for HMACs the service keeps to itself (throttle keys)."""
        return self.storage_dir / "keys" / "hmac.key"

    @property
    def sample_dir(self) -> Path:
        return self.storage_dir / "samples"

    @property
    def dataset_dir(self) -> Path:
        return self.storage_dir / "datasets"

    @property
    def hosted_dir(self) -> Path:
        """Datasets converted for queries (Parquet), by the sha256 of their source."""
        return self.storage_dir / "hosted"

    @property
    def download_key_dir(self) -> Path:
        return self.storage_dir / "keys"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, dotenv: Path | None = Path(".env")) -> Settings:
        env: dict[str, str] = dict(_read_dotenv(dotenv)) if dotenv else {}
        env.update(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, raw)
        return cls(**values)


def _parse(name: str, raw: str) -> Any:
    if name in {"storage_dir", "rulebook_path", "jwt_key_path"}:
        return Path(raw)
    if name == "jwt_retired_public_keys":
        return tuple(Path(p) for p in raw.split(",") if p.strip())
    if name == "log_json":
        return raw.lower() in {"1", "true", "yes"}
    if name in {
        "platform_fee_bps",
        "order_payment_window_seconds",
        "order_confirm_window_seconds",
        "idempotency_lock_seconds",
        "jwt_ttl_seconds",
        "login_failure_window_seconds",
        "login_max_failures_per_account",
        "login_max_failures_per_address",
        "max_request_body_bytes",
        "max_sample_bytes",
        "max_dataset_bytes",
        "download_link_ttl_seconds",
        "aggregate_min_group_size",
        "access_key_rate_limit_per_minute",
        "database_pool_size",
    }:
        try:
            return int(raw)
        except ValueError as exc:
            raise ValueError(f"{name.upper()} must be an integer, got {raw!r}") from exc
    return raw
