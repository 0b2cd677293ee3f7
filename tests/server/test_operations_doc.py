"""docs/operations.md, "Operating a store", against the server: every metric family /metrics
exports is in the table, and the limits quoted are the ones the server enforces."""

from __future__ import annotations

from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from shopkeep_server.app import DISCARD_BYTES
from shopkeep_server.serving import (
    LIMIT_REQUEST_FIELD_SIZE,
    LIMIT_REQUEST_FIELDS,
    LIMIT_REQUEST_LINE,
)
from shopkeep_server.store.rules import MAX_JSON_DEPTH
from support import ROOT

OPERATIONS_DOC = ROOT / "docs" / "operations.md"
SUFFIX = {"counter": "_total", "histogram": "", "gauge": ""}


def test_every_exported_metric_is_documented(client: FlaskClient) -> None:
    text = client.get("/metrics").get_data(as_text=True)
    doc = OPERATIONS_DOC.read_text()
    families = [
        family.name + SUFFIX.get(family.type, "")
        for family in text_string_to_metric_families(text)
        # `_created` is the client library's creation time of an unlabelled counter.
        if family.name.startswith("shopkeep_") and not family.name.endswith("_created")
    ]
    assert len(families) >= 17
    assert [name for name in families if f"| `{name}` |" not in doc] == []


def test_the_documented_limits_are_the_servers() -> None:
    doc = OPERATIONS_DOC.read_text()
    limits = doc[doc.index("### Limits") :]
    assert f"| {LIMIT_REQUEST_LINE} bytes |" in limits
    assert f"({LIMIT_REQUEST_FIELD_SIZE} bytes)" in limits
    assert f"| headers | {LIMIT_REQUEST_FIELDS} |" in limits
    assert f"| JSON nesting | {MAX_JSON_DEPTH} levels |" in limits
    assert f"up to {DISCARD_BYTES // (1024 * 1024)} MiB is read" in limits
