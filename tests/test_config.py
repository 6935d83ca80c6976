"""Settings: what each variable accepts, where values come from, and the `marketplace config` command."""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from marketplace.cli import main as cli_main
from marketplace.config import JOB_INTERVAL, Settings, SettingsError, job_cron
from marketplace.kit.i18n import Language

README = Path(__file__).resolve().parent.parent / "README.md"
DATABASE_URL_WITH_PASSWORD = "postgresql+asyncpg://trader:hunter2@db.example:5432/marketplace"
WINDOW = "an integer from 1 to 3153600000"
AT_LEAST_ONE = "an integer of at least 1"
DATABASE_URLS = "a sqlite+aiosqlite:// or postgresql+asyncpg:// database URL"
WEBHOOK_WAITS = "1 to 50 comma-separated whole seconds from 0 to 3153600000"
NETWORKS = "comma-separated networks in CIDR notation, such as 127.0.0.1/32,10.20.0.0/16"


def refusal(environ: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(environ, dotenv=None)
    return str(refused.value)


@pytest.mark.parametrize(
    ("name", "bad", "accepts"),
    [
        ("PLATFORM_FEE_BPS", "-5", "an integer from 0 to 10000"),
        ("PLATFORM_FEE_BPS", "20000", "an integer from 0 to 10000"),
        ("PLATFORM_FEE_BPS", "5%", "an integer from 0 to 10000"),
        ("DOWNLOAD_LINK_TTL_SECONDS", "0", "an integer from 1 to 900"),
        ("DOWNLOAD_LINK_TTL_SECONDS", "99999", "an integer from 1 to 900"),
        ("DATABASE_POOL_SIZE", "-1", "an integer from 0 to 500"),
        ("DATABASE_POOL_SIZE", "501", "an integer from 0 to 500"),
        ("ORDER_PAYMENT_WINDOW_SECONDS", "0", WINDOW),
        ("ORDER_CONFIRM_WINDOW_SECONDS", "3153600001", WINDOW),
        ("IDEMPOTENCY_LOCK_SECONDS", "-60", WINDOW),
        ("JWT_TTL_SECONDS", "15m", WINDOW),
        ("LOGIN_FAILURE_WINDOW_SECONDS", "0", WINDOW),
        ("LOGIN_MAX_FAILURES_PER_ACCOUNT", "0", AT_LEAST_ONE),
        ("LOGIN_MAX_FAILURES_PER_ADDRESS", "-1", AT_LEAST_ONE),
        ("REGISTRATION_WINDOW_SECONDS", "0", WINDOW),
        ("REGISTRATION_MAX_PER_ADDRESS", "0", AT_LEAST_ONE),
        ("MAX_REQUEST_BODY_BYTES", "0", AT_LEAST_ONE),
        ("MAX_SAMPLE_BYTES", "10MB", AT_LEAST_ONE),
        ("MAX_DATASET_BYTES", "0", AT_LEAST_ONE),
        ("AGGREGATE_MIN_GROUP_SIZE", "0", AT_LEAST_ONE),
        ("ACCESS_KEY_RATE_LIMIT_PER_MINUTE", "0", "an integer from 1 to 2147483647"),
        ("ACCESS_KEY_RATE_LIMIT_PER_MINUTE", "2147483648", "an integer from 1 to 2147483647"),
        ("IN_PROCESS_JOBS", "sometimes", "true or false (also 1 or 0, yes or no, on or off)"),
        ("SETTLEMENT_INTERVAL_SECONDS", "0", JOB_INTERVAL),
        ("SETTLEMENT_INTERVAL_SECONDS", "7", JOB_INTERVAL),
        ("LICENCE_EXPIRY_INTERVAL_SECONDS", "90", JOB_INTERVAL),
        ("PRUNE_INTERVAL_SECONDS", "172800", JOB_INTERVAL),
        ("IDEMPOTENCY_RETENTION_SECONDS", "0", WINDOW),
        ("WORKER_STALLED_SECONDS", "2", "an integer from 3 to 3600"),
        ("WORKER_STALLED_SECONDS", "3601", "an integer from 3 to 3600"),
        ("WEBHOOK_INTERVAL_SECONDS", "7", JOB_INTERVAL),
        ("WEBHOOK_RETRY_SCHEDULE", "5,soon", WEBHOOK_WAITS),
        ("WEBHOOK_RETRY_SCHEDULE", "5,-1", WEBHOOK_WAITS),
        ("WEBHOOK_RETRY_SCHEDULE", ",".join(["1"] * 51), WEBHOOK_WAITS),
        ("WEBHOOK_SECRET_OVERLAP_SECONDS", "0", WINDOW),
        ("WEBHOOK_TIMEOUT_SECONDS", "61", "an integer from 1 to 60"),
        ("WEBHOOK_ALLOWED_NETWORKS", "10.0.0.1/8", NETWORKS),  # host bits set: a typo, not a network
        ("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32,intranet", NETWORKS),
        ("LOG_LEVEL", "verbose", "one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("LOG_JSON", "ture", "true or false (also 1 or 0, yes or no, on or off)"),
        ("LOG_JSON", "2", "true or false (also 1 or 0, yes or no, on or off)"),
        ("PAYMENT_GATEWAY", "paypal", "local or stripe"),
        ("DEFAULT_LANGUAGE", "zh-TW", "en or zh-CN"),
        ("DOWNLOAD_KEY_ID", "../dl1", "1 to 32 letters, digits, - or _"),
        ("DOWNLOAD_KEY_ID", "k" * 33, "1 to 32 letters, digits, - or _"),
        ("DATABASE_URL", "mysql+aiomysql://db.example/marketplace", DATABASE_URLS),
        ("DATABASE_URL", "marketplace.db", DATABASE_URLS),
    ],
)
def test_a_bad_value_is_refused_in_one_line_naming_the_variable(name: str, bad: str, accepts: str) -> None:
    assert refusal({name: bad}) == f"{name} must be {accepts}, got {bad!r}"


def test_a_refused_database_url_does_not_show_its_password() -> None:
    line = refusal({"DATABASE_URL": "postgresql://trader:hunter2@db.example/marketplace"})
    assert line.endswith("got 'postgresql://trader:***@db.example/marketplace'")
    assert "hunter2" not in line


def test_several_bad_values_get_one_line_each() -> None:
    lines = refusal({"PLATFORM_FEE_BPS": "20000", "LOG_JSON": "ture", "LOG_LEVEL": "INFO"}).splitlines()
    assert [line.split()[0] for line in lines] == ["PLATFORM_FEE_BPS", "LOG_JSON"]


@pytest.mark.parametrize(
    ("name", "value", "field", "expected"),
    [
        ("PLATFORM_FEE_BPS", "0", "platform_fee_bps", 0),
        ("PLATFORM_FEE_BPS", "10000", "platform_fee_bps", 10_000),
        ("DOWNLOAD_LINK_TTL_SECONDS", "1", "download_link_ttl_seconds", 1),
        ("DOWNLOAD_LINK_TTL_SECONDS", "900", "download_link_ttl_seconds", 900),
        ("DATABASE_POOL_SIZE", "0", "database_pool_size", 0),
        ("DATABASE_POOL_SIZE", "500", "database_pool_size", 500),
        ("ORDER_CONFIRM_WINDOW_SECONDS", "3153600000", "order_confirm_window_seconds", 3_153_600_000),
        ("MAX_DATASET_BYTES", "1", "max_dataset_bytes", 1),
        ("IN_PROCESS_JOBS", "off", "in_process_jobs", False),
        ("SETTLEMENT_INTERVAL_SECONDS", "15", "settlement_interval_seconds", 15),
        ("LICENCE_EXPIRY_INTERVAL_SECONDS", "1", "licence_expiry_interval_seconds", 1),
        ("PRUNE_INTERVAL_SECONDS", "86400", "prune_interval_seconds", 86_400),
        ("PRUNE_INTERVAL_SECONDS", "1200", "prune_interval_seconds", 1_200),
        ("IDEMPOTENCY_RETENTION_SECONDS", "3153600000", "idempotency_retention_seconds", 3_153_600_000),
        ("WORKER_STALLED_SECONDS", "3", "worker_stalled_seconds", 3),
        ("WEBHOOK_INTERVAL_SECONDS", "1", "webhook_interval_seconds", 1),
        ("WEBHOOK_RETRY_SCHEDULE", "0, 1,2,", "webhook_retry_schedule", (0, 1, 2)),
        ("WEBHOOK_TIMEOUT_SECONDS", "60", "webhook_timeout_seconds", 60),
        (
            "WEBHOOK_ALLOWED_NETWORKS",
            "127.0.0.1/32, ::1/128",
            "webhook_allowed_networks",
            (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128")),
        ),
        ("LOG_LEVEL", "warning", "log_level", "WARNING"),
        ("LOG_JSON", "No", "log_json", False),
        ("LOG_JSON", "on", "log_json", True),
        ("LOG_JSON", "0", "log_json", False),
        ("PAYMENT_GATEWAY", "stripe", "payment_gateway", "stripe"),
        ("DEFAULT_LANGUAGE", "zh-CN", "default_language", Language.ZH_CN),
        ("DOWNLOAD_KEY_ID", "dl-2026_a", "download_key_id", "dl-2026_a"),
        ("DATABASE_URL", DATABASE_URL_WITH_PASSWORD, "database_url", DATABASE_URL_WITH_PASSWORD),
        ("DATABASE_URL", "sqlite+aiosqlite:///var/db.sqlite", "database_url", "sqlite+aiosqlite:///var/db.sqlite"),
        (
            "JWT_RETIRED_PUBLIC_KEYS",
            "old.pem, older.pem,",
            "jwt_retired_public_keys",
            (Path("old.pem"), Path("older.pem")),
        ),
        ("STORAGE_DIR", "/srv/marketplace", "storage_dir", Path("/srv/marketplace")),
    ],
)
def test_good_values_are_accepted(name: str, value: str, field: str, expected: object) -> None:
    assert getattr(Settings.from_env({name: value}, dotenv=None), field) == expected


def test_an_empty_value_means_unset() -> None:
    settings = Settings.from_env({"PLATFORM_FEE_BPS": "", "LOG_JSON": "", "JWT_KEY_PATH": ""}, dotenv=None)
    assert (settings.platform_fee_bps, settings.log_json, settings.jwt_key_path) == (500, True, None)


def test_the_dotenv_file_is_read_and_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("# local overrides\nPLATFORM_FEE_BPS=250\nLOG_LEVEL='debug'\nDOWNLOAD_KEY_ID=\nUNRELATED=1\n")
    monkeypatch.setenv("PLATFORM_FEE_BPS", "300")
    settings = Settings.from_env(dotenv=dotenv)
    assert (settings.platform_fee_bps, settings.log_level, settings.download_key_id) == (300, "DEBUG", "dl1")
    assert Settings.from_env({}, dotenv=dotenv).platform_fee_bps == 250


def test_a_bad_value_in_the_dotenv_file_is_refused(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("LOG_JSON=ture\n")
    with pytest.raises(SettingsError, match=r"^LOG_JSON must be .*, got 'ture'$"):
        Settings.from_env({}, dotenv=dotenv)


def test_keyword_construction_reads_neither_the_environment_nor_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("PLATFORM_FEE_BPS=250\nLOG_JSON=false\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PLATFORM_FEE_BPS", "300")
    monkeypatch.setenv("JWT_TTL_SECONDS", "60")
    settings = Settings(storage_dir=tmp_path, log_json=False, database_pool_size=20)
    assert (settings.platform_fee_bps, settings.jwt_ttl_seconds, settings.log_json) == (500, 900, False)
    assert Settings.from_env().platform_fee_bps == 300


def test_settings_are_immutable() -> None:
    settings = Settings()
    with pytest.raises(ValidationError, match="frozen"):
        settings.platform_fee_bps = 0  # type: ignore[misc]


def test_secrets_stay_out_of_repr() -> None:
    settings = Settings(stripe_api_key="sk_test_repr", stripe_webhook_secret="whsec_repr")
    assert "sk_test_repr" not in repr(settings)
    assert "whsec_repr" not in repr(settings)


# marketplace config


@pytest.fixture
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No stray .env and no variable of the developer's shell."""
    monkeypatch.chdir(tmp_path)
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def with_secrets(env: pytest.MonkeyPatch) -> None:
    env.setenv("DATABASE_URL", DATABASE_URL_WITH_PASSWORD)
    env.setenv("STRIPE_API_KEY", "sk_live_secret")
    env.setenv("STRIPE_WEBHOOK_SECRET", "whsec_secret")
    env.setenv("JWT_RETIRED_PUBLIC_KEYS", "old.pem,older.pem")


def readme_variables() -> list[str]:
    """The variable names of the README's Configuration table, in its order."""
    section = README.read_text(encoding="utf-8").split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return [name for row in rows for name in re.findall(r"`([A-Z_]+)`", row)]


def test_config_prints_every_setting_in_the_readme_order_with_secrets_masked(
    clean_environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with_secrets(clean_environment)
    assert cli_main(["config"]) == 0
    printed = capsys.readouterr().out
    lines = dict(line.split("=", 1) for line in printed.splitlines())
    assert list(lines) == readme_variables()
    assert lines["DATABASE_URL"] == "postgresql+asyncpg://trader:***@db.example:5432/marketplace"
    assert lines["STRIPE_API_KEY"] == lines["STRIPE_WEBHOOK_SECRET"] == "***"
    assert lines["JWT_RETIRED_PUBLIC_KEYS"] == "old.pem,older.pem"
    assert (lines["PLATFORM_FEE_BPS"], lines["LOG_JSON"], lines["RULEBOOK_PATH"]) == ("500", "true", "")
    for secret in ("hunter2", "sk_live_secret", "whsec_secret"):
        assert secret not in printed


def test_config_json(clean_environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with_secrets(clean_environment)
    assert cli_main(["config", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["DATABASE_URL"] == "postgresql+asyncpg://trader:***@db.example:5432/marketplace"
    assert shown["STRIPE_API_KEY"] == "***"
    assert (shown["PLATFORM_FEE_BPS"], shown["LOG_JSON"], shown["JWT_KEY_PATH"]) == (500, True, None)
    assert shown["JWT_RETIRED_PUBLIC_KEYS"] == ["old.pem", "older.pem"]


def test_a_bad_value_stops_the_cli_with_one_error_line(
    clean_environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_environment.setenv("PLATFORM_FEE_BPS", "20000")
    assert cli_main(["config"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "error: PLATFORM_FEE_BPS must be an integer from 0 to 10000, got '20000'\n"
    assert captured.out == ""


def test_serve_checks_the_settings_before_starting_workers(
    clean_environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def serve_anyway(*_: object) -> int:
        raise AssertionError("granian would have started")

    clean_environment.setattr("marketplace.cli.cmd_serve", serve_anyway)
    clean_environment.setenv("DOWNLOAD_LINK_TTL_SECONDS", "99999")
    assert cli_main(["serve"]) == 2
    assert capsys.readouterr().err == "error: DOWNLOAD_LINK_TTL_SECONDS must be an integer from 1 to 900, got '99999'\n"


def test_the_command_exits_2_without_a_traceback(clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv("LOG_JSON", "ture")
    done = subprocess.run(
        [sys.executable, "-m", "marketplace.cli", "config"], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr == "error: LOG_JSON must be true or false (also 1 or 0, yes or no, on or off), got 'ture'\n"
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("seconds", "cron"),
    [
        (1, "* * * * * */1"),
        (15, "* * * * * */15"),
        (60, "*/1 * * * * 0"),
        (1_200, "*/20 * * * * 0"),
        (86_400, "0 */24 * * * 0"),
    ],
)
def test_a_job_interval_is_kept_exactly_by_its_cron(seconds: int, cron: str) -> None:
    assert job_cron(seconds) == cron
