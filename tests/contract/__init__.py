"""The wire-shape contract: every body the suite's requests get, checked against the OpenAPI
document's schema for its route and status, and read by the SDK's parsers."""
