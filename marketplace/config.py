"""Settings: the only place where environment variables are read, and where each one's accepted values are stated."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, DotEnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from marketplace.kit.i18n import Language
from marketplace.kit.money import BPS_PER_WHOLE

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./marketplace.db"
DATABASE_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)
# Strict on purpose: a typo such as `ture` must stop the start, not quietly mean false.
BOOLEAN_WORDS = dict.fromkeys(("true", "1", "yes", "on"), True) | dict.fromkeys(("false", "0", "no", "off"), False)
# Each process may open twice this many connections (the pool, as many again in overflow).
MAX_DATABASE_POOL_SIZE = 500
# Windows are subtracted from and added to the current time: far longer than any policy, far inside datetime's range.
MAX_WINDOW_SECONDS = 100 * 365 * 86_400
# A signed download link lives at most 15 minutes (marketplace.delivery.links refuses longer).
MAX_DOWNLOAD_LINK_TTL_SECONDS = 900
# Access keys store their rate limit in a PostgreSQL `integer` column.
MAX_RATE_LIMIT_PER_MINUTE = 2**31 - 1
# A job runs at least daily; its interval divides a minute, an hour or a day evenly (see `_whole_cron_step`).
MAX_JOB_INTERVAL_SECONDS = 86_400
JOB_INTERVAL = (
    "a number of seconds from 1 to 86400 that is whole seconds dividing a minute, whole minutes dividing an hour "
    "or whole hours dividing a day (such as 5, 60, 300, 3600)"
)
# Webhook deliveries are retried after these waits (seconds, each with up to a fifth more of jitter), about
# three days in all; after the last the endpoint is disabled.
WEBHOOK_RETRY_SCHEDULE = (5, 300, 1_800, 7_200, 18_000, 36_000, 36_000, 36_000, 36_000, 36_000, 36_000)
MAX_WEBHOOK_RETRIES = 50
# The password of a database URL, as SQLAlchemy reads it: after the user name, up to the first `@`.
_URL_PASSWORD = re.compile(r"^([\w+]+://[^:/@]*):[^@]*@")


class SettingsError(ValueError):
    """The environment or the .env file sets variables to values they do not accept: one line for each."""


def _integer(default: int, low: int, high: int | None = None) -> Any:
    """An integer field from `low` to `high` (unbounded above when None), saying so in its description."""
    accepts = f"an integer from {low} to {high}" if high is not None else f"an integer of at least {low}"
    return Field(default, ge=low, le=high, description=accepts)


class Settings(BaseSettings):
    """Every setting with its default. A field's description says what its variable accepts (errors quote it);
    the fields are in the README's order, which `marketplace config` prints."""

    # Variable names match exactly (upper case) and an empty value means unset, in .env as in the environment.
    model_config = SettingsConfigDict(frozen=True, case_sensitive=True, env_ignore_empty=True)

    database_url: str = Field(
        DEFAULT_DATABASE_URL, description="a sqlite+aiosqlite:// or postgresql+asyncpg:// database URL"
    )
    database_pool_size: int = _integer(10, 0, MAX_DATABASE_POOL_SIZE)
    storage_dir: Path = Field(Path("./var"), description="a directory path")
    rulebook_path: Path | None = Field(None, description="a file path")
    payment_gateway: Literal["local", "stripe"] = Field("local", description="local or stripe")
    stripe_api_key: str | None = Field(None, repr=False, description="a Stripe secret key")
    stripe_webhook_secret: str | None = Field(None, repr=False, description="a Stripe webhook signing secret")
    stripe_api_base: str | None = Field(None, description="a URL")
    metrics_token: str | None = Field(None, repr=False, description="a bearer token for GET /metrics (unset: off)")
    otel_exporter_otlp_endpoint: str | None = Field(None, description="an OTLP/HTTP collector URL (unset: no traces)")
    platform_fee_bps: int = _integer(500, 0, BPS_PER_WHOLE)
    # An accepted order not paid within this window is cancelled and its licence released.
    order_payment_window_seconds: int = _integer(86_400, 1, MAX_WINDOW_SECONDS)
    # A delivered order the buyer neither confirms nor disputes within this window completes by itself.
    order_confirm_window_seconds: int = _integer(604_800, 1, MAX_WINDOW_SECONDS)
    # An idempotent request still marked running after this long is taken to have died.
    idempotency_lock_seconds: int = _integer(60, 1, MAX_WINDOW_SECONDS)
    jwt_issuer: str = Field("marketplace", description="any text")
    jwt_audience: str = Field("marketplace-api", description="any text")
    jwt_ttl_seconds: int = _integer(900, 1, MAX_WINDOW_SECONDS)
    jwt_key_path: Path | None = Field(None, description="a file path")
    jwt_retired_public_keys: tuple[Path, ...] = Field((), description="comma-separated file paths")
    # The notary's Ed25519 key: it signs the transparency log's tree heads and trade certificates; never an
    # access-token key. Its retired keys (`marketplace notary rotate` adds them) are public keys kept for ever.
    notary_key_path: Path | None = Field(None, description="a file path")
    notary_retired_key_dir: Path | None = Field(None, description="a directory path")
    login_failure_window_seconds: int = _integer(60, 1, MAX_WINDOW_SECONDS)
    login_max_failures_per_account: int = _integer(5, 1)
    login_max_failures_per_address: int = _integer(20, 1)
    # Accounts one client address may register per window (each is an argon2 hash: costly on purpose).
    registration_window_seconds: int = _integer(3_600, 1, MAX_WINDOW_SECONDS)
    registration_max_per_address: int = _integer(10, 1)
    # The administrators' console (marketplace/console): a session cookie ends after this long unused, and after
    # the longer one whatever its use; `auto` marks it Secure when the request came over https, `always` whatever
    # the scheme (behind a proxy that ends TLS and forwards plain http).
    console_session_idle_seconds: int = _integer(1_800, 60, MAX_WINDOW_SECONDS)
    console_session_max_seconds: int = _integer(43_200, 60, MAX_WINDOW_SECONDS)
    console_secure_cookie: Literal["auto", "always"] = Field("auto", description="auto or always")
    max_request_body_bytes: int = _integer(1_048_576, 1)
    max_sample_bytes: int = _integer(10_485_760, 1)
    # Delivery: the largest dataset a provider may upload, how long a signed download link lives (at most
    # 15 minutes) and the key that signs new links (older key files still verify until removed), the
    # smallest group an aggregate may reveal, and the calls per minute of one API access key.
    max_dataset_bytes: int = _integer(4 * 1024**3, 1)
    download_link_ttl_seconds: int = _integer(900, 1, MAX_DOWNLOAD_LINK_TTL_SECONDS)
    # It names a key file, so it is the token marketplace/delivery/links.py accepts.
    download_key_id: str = Field("dl1", pattern=r"^[A-Za-z0-9_-]{1,32}$", description="1 to 32 letters, digits, - or _")
    aggregate_min_group_size: int = _integer(10, 1)
    access_key_rate_limit_per_minute: int = _integer(120, 1, MAX_RATE_LIMIT_PER_MINUTE)
    # The exchange's periodic jobs (marketplace/jobs.py): how often each runs; on PostgreSQL `marketplace worker`
    # runs them, on SQLite `marketplace serve` does (unless IN_PROCESS_JOBS is off; `marketplace worker` then).
    in_process_jobs: bool = Field(True, description="true or false (also 1 or 0, yes or no, on or off)")
    settlement_interval_seconds: int = Field(300, description=JOB_INTERVAL)
    licence_expiry_interval_seconds: int = Field(60, description=JOB_INTERVAL)
    prune_interval_seconds: int = Field(3_600, description=JOB_INTERVAL)
    # The transparency log's sequencer (marketplace/audit/sequencer.py): how often new audit entries join the tree
    # under a new signed tree head, and how many entries one of its transactions takes at most.
    audit_sequencer_interval_seconds: int = Field(5, description=JOB_INTERVAL)
    audit_sequencer_batch: int = _integer(10_000, 1, 1_000_000)
    # Recurring billing (marketplace/flows/billing.py): how often statements are issued, collected and subscriptions
    # renewed; when a declined charge is tried again; how long an unpaid licence keeps working, and how long an
    # unpaid subscription stays suspended before it expires.
    usage_statement_interval_seconds: int = Field(3_600, description=JOB_INTERVAL)
    usage_collection_interval_seconds: int = Field(3_600, description=JOB_INTERVAL)
    renewal_interval_seconds: int = Field(3_600, description=JOB_INTERVAL)
    billing_retry_seconds: tuple[int, ...] = Field(
        (86_400, 259_200), description=f"comma-separated numbers of seconds, each from 1 to {MAX_WINDOW_SECONDS}"
    )
    billing_grace_seconds: int = _integer(604_800, 0, MAX_WINDOW_SECONDS)
    subscription_suspension_seconds: int = _integer(1_209_600, 0, MAX_WINDOW_SECONDS)
    # Idempotency records older than this are deleted: a key may be replayed for this long.
    idempotency_retention_seconds: int = _integer(86_400, 1, MAX_WINDOW_SECONDS)
    # A worker silent this long is taken as dead, and the job it was running runs again (it heartbeats 3x as often).
    worker_stalled_seconds: int = _integer(30, 3, 3_600)
    # Outbound webhooks (marketplace/events/webhooks.py): how often deliveries are queued and sent, the waits
    # between retries, how long a rotated secret still signs, the timeouts of one attempt, and the networks
    # endpoints may be in although they are not public (tests' loopback receivers, a company's own network).
    webhook_interval_seconds: int = Field(2, description=JOB_INTERVAL)
    webhook_retry_schedule: tuple[int, ...] = Field(
        WEBHOOK_RETRY_SCHEDULE,
        min_length=1,
        max_length=MAX_WEBHOOK_RETRIES,
        description=f"1 to {MAX_WEBHOOK_RETRIES} comma-separated whole seconds from 0 to {MAX_WINDOW_SECONDS}",
    )
    webhook_secret_overlap_seconds: int = _integer(86_400, 1, MAX_WINDOW_SECONDS)
    webhook_timeout_seconds: int = _integer(10, 1, 60)
    webhook_allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = Field(
        (), description="comma-separated networks in CIDR notation, such as 127.0.0.1/32,10.20.0.0/16"
    )
    log_level: LogLevel = Field("INFO", description=f"one of {', '.join(LOG_LEVELS)}")
    log_json: bool = Field(True, description="true or false (also 1 or 0, yes or no, on or off)")
    # The language of findings and problems when a request's Accept-Language names none the service speaks.
    default_language: Language = Field(Language.EN, description=" or ".join(Language))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword construction (tests, benchmarks) sees its arguments only; `from_env` reads the environment."""
        return (init_settings,)

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, url: str) -> str:
        try:
            driver = make_url(url).drivername
        except (ArgumentError, ValueError) as error:
            raise ValueError("not a database URL") from error
        if driver not in DATABASE_DRIVERS:
            raise ValueError(f"the driver must be one of {', '.join(DATABASE_DRIVERS)}")
        return url

    @field_validator("jwt_retired_public_keys", mode="before")
    @classmethod
    def _split_paths(cls, value: Any) -> Any:
        return tuple(part.strip() for part in value.split(",") if part.strip()) if isinstance(value, str) else value

    @field_validator("webhook_retry_schedule", "webhook_allowed_networks", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        return tuple(part.strip() for part in value.split(",") if part.strip()) if isinstance(value, str) else value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _retry_waits(cls, waits: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 0 <= wait <= MAX_WINDOW_SECONDS for wait in waits):
            raise ValueError("a wait is out of range")
        return waits

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("billing_retry_seconds", mode="before")
    @classmethod
    def _split_seconds(cls, value: Any) -> Any:
        return tuple(part.strip() for part in value.split(",")) if isinstance(value, str) else value

    @field_validator("billing_retry_seconds")
    @classmethod
    def _retry_schedule(cls, steps: tuple[int, ...]) -> tuple[int, ...]:
        if not steps or not all(1 <= step <= MAX_WINDOW_SECONDS for step in steps):
            raise ValueError("not a schedule of retries")
        return steps

    @field_validator(
        "settlement_interval_seconds",
        "licence_expiry_interval_seconds",
        "prune_interval_seconds",
        "audit_sequencer_interval_seconds",
        "webhook_interval_seconds",
        "usage_statement_interval_seconds",
        "usage_collection_interval_seconds",
        "renewal_interval_seconds",
    )
    @classmethod
    def _job_interval(cls, seconds: int) -> int:
        if _whole_cron_step(seconds) is None:
            raise ValueError("not an interval a schedule can keep evenly")
        return seconds

    @field_validator("log_json", "in_process_jobs", mode="before")
    @classmethod
    def _boolean_word(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if value.lower() not in BOOLEAN_WORDS:
            raise ValueError(f"not one of {', '.join(BOOLEAN_WORDS)}")
        return BOOLEAN_WORDS[value.lower()]

    @property
    def signing_key_path(self) -> Path:
        return self.jwt_key_path or self.storage_dir / "keys" / "jwt-ed25519.pem"

    @property
    def notary_key(self) -> Path:
        return self.notary_key_path or self.storage_dir / "keys" / "notary-ed25519.pem"

    @property
    def retired_notary_keys(self) -> Path:
        return self.notary_retired_key_dir or self.storage_dir / "keys" / "notary-retired"

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
    def from_env(cls, environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")) -> Settings:
        """The settings the process environment (or `environ`) and the .env file give; the environment wins,
        an empty value means unset. Raises SettingsError naming every variable with a value it does not accept."""
        variables = {**_dotenv_variables(dotenv), **(os.environ if environ is None else environ)}
        given: dict[str, Any] = {name: raw for name in cls.model_fields if (raw := variables.get(name.upper()))}
        try:
            return cls(**given)
        except ValidationError as error:
            raise SettingsError(_refusals(error, given)) from None

    def masked_variables(self) -> dict[str, Any]:
        """Every setting by its variable name, as JSON values in the README's order, with secrets masked."""
        return {name.upper(): _masked(name, value) for name, value in self.model_dump(mode="json").items()}


def _whole_cron_step(seconds: int) -> tuple[str, int] | None:
    """The unit and step an interval is kept in exactly (("second", 5), ("minute", 5), ("hour", 1)); None when
    it is none of whole seconds dividing a minute, whole minutes dividing an hour, whole hours dividing a day."""
    for unit, size, per in (("hour", 3_600, 24), ("minute", 60, 60), ("second", 1, 60)):
        step, rest = divmod(seconds, size)
        if rest == 0 and 1 <= step <= per and per % step == 0:
            return unit, step
    return None


def job_cron(seconds: int) -> str:
    """The interval as a cron expression (six fields, seconds last, as the job engine reads it)."""
    kept = _whole_cron_step(seconds)
    assert kept is not None, "the settings validated it"
    unit, step = kept
    every = f"*/{step}"
    if unit == "second":
        return f"* * * * * {every}"
    if unit == "minute":
        return f"{every} * * * * 0"
    return f"0 {every} * * * 0"


def _dotenv_variables(dotenv: Path | None) -> Mapping[str, str | None]:
    return DotEnvSettingsSource(Settings, env_file=dotenv).env_vars if dotenv else {}


def _refusals(error: ValidationError, given: Mapping[str, str]) -> str:
    """One line for each refused variable (a value may break several constraints): what it accepts, what it got."""
    refused = dict.fromkeys(str(detail["loc"][0]) for detail in error.errors())
    return "\n".join(
        f"{name.upper()} must be {Settings.model_fields[name].description}, got {_masked(name, given[name])!r}"
        for name in refused
    )


def _masked(name: str, value: Any) -> Any:
    """A value fit to print: secrets (the fields kept out of repr) as ***, a database URL without its password."""
    if value is None:
        return None
    if not Settings.model_fields[name].repr:
        return "***"
    if name == "database_url":
        return _URL_PASSWORD.sub(r"\1:***@", value)
    return value
