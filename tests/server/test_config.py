"""Configuration from the environment, and the table of it in docs/operations.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopkeep_server.config import MIN_IDEMPOTENCY_TTL, VARIABLES, Config, ConfigError

OPERATIONS_DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_defaults() -> None:
    config = Config.from_env({})
    assert config.database_url is None
    assert config.idempotency_ttl == 86_400
    assert config.pool_max == config.threads + 2 == 10
    assert config.rate_limit == "100/second"
    assert config.max_body_bytes == 65_536


def test_values_and_errors() -> None:
    config = Config.from_env(
        {
            "SHOPKEEP_DATABASE_URL": "postgresql://x/y",
            "SHOPKEEP_THREADS": "4",
            "SHOPKEEP_RATE_LIMIT": "none",
            "SHOPKEEP_STOCK_BUCKETS": "32",
        }
    )
    assert (config.database_url, config.pool_max, config.rate_limit) == (
        "postgresql://x/y",
        6,
        None,
    )
    assert config.stock_buckets == 32
    with pytest.raises(ConfigError, match="SHOPKEEP_POOL_MAX must be an integer"):
        Config.from_env({"SHOPKEEP_POOL_MAX": "many"})
    with pytest.raises(ConfigError, match="at least 86400"):
        Config.from_env({"SHOPKEEP_IDEMPOTENCY_TTL": str(MIN_IDEMPOTENCY_TTL - 1)})


def test_operations_doc_documents_every_variable() -> None:
    text = OPERATIONS_DOC.read_text()
    for name in VARIABLES:
        assert f"| `{name}` |" in text, name


def test_event_retention_and_poll() -> None:
    config = Config.from_env({})
    assert (config.event_retention, config.event_poll_ms) == (30 * 24 * 3600, 100)
    assert Config.from_env({"SHOPKEEP_EVENT_RETENTION": "7200"}).event_retention == 7200
    with pytest.raises(ConfigError, match="SHOPKEEP_EVENT_RETENTION must be at least 3600"):
        Config.from_env({"SHOPKEEP_EVENT_RETENTION": "60"})
    with pytest.raises(ConfigError, match="SHOPKEEP_EVENT_POLL_MS must be at least 10"):
        Config.from_env({"SHOPKEEP_EVENT_POLL_MS": "0"})
