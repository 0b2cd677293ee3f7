"""What every operation of the OpenAPI document shares, added in one place.

A route declares only what is its own (its success schema, its business rejections, the
headers of its success response, the Idempotency-Key or If-Match it reads). The plugin below
derives the rest from what the operation already says: every response carries X-Request-Id;
every operation may answer 400 (a request the HTTP server refuses), 500 and 503; one that
needs a token answers 401, 403 and 429; one with a body or query answers the input errors;
one that reads an Idempotency-Key answers the key's errors and marks its replayable answers
with Idempotent-Replayed. A new route therefore gets its common headers and error responses
without a line of its own.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec, BasePlugin

from .schemas import ErrorSchema, codes_by_status, describe_codes

ERROR_COMPONENT = "Error"
ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}

REQUEST_ID_HEADER: dict[str, Any] = {
    "description": "The request's id (the client's X-Request-Id if well formed), also in logs "
    "and in an error's request_id.",
    "schema": {"type": "string"},
    "required": True,
}
RETRY_AFTER_HEADER: dict[str, Any] = {
    "description": "Seconds to wait before sending the same request again.",
    "schema": {"type": "integer", "minimum": 1},
    "required": True,
}
IDEMPOTENT_REPLAYED_HEADER: dict[str, Any] = {
    "description": "`true` when this is the stored outcome of an earlier request with the same "
    "Idempotency-Key; absent on the first answer.",
    "schema": {"type": "string", "enum": ["true"]},
}
# Error codes each shared cause can answer, grouped by status (from the error table).
# bad_request for any operation: the HTTP server itself answers it in the envelope to a request
# over its limits (request line, header size or count) or malformed (serving.StoreWorker).
_ANY = ("bad_request", "internal_error", "unavailable")
_AUTHENTICATED = ("unauthenticated", "forbidden", "rate_limited")
_BODY = ("bad_request", "payload_too_large", "unsupported_media_type", "validation_failed")
_QUERY = ("validation_failed",)
_IDEMPOTENT = (
    "idempotency_key_missing",
    "idempotency_key_invalid",
    "idempotency_key_in_use",
    "idempotency_key_reused",
)
_IF_MATCH = ("precondition_failed",)
_IF_MATCH_REQUIRED = ("precondition_required",)
# Codes whose answer tells the client when to try again.
_RETRY_AFTER_CODES = frozenset(
    {"idempotency_key_in_use", "rate_limited", "unavailable", "store_unavailable"}
)


def _header_parameter(operation: dict[str, Any], name: str) -> dict[str, Any] | None:
    for parameter in operation.get("parameters", []):
        if (
            isinstance(parameter, dict)
            and parameter.get("in") == "header"
            and parameter.get("name", "").lower() == name.lower()
        ):
            return parameter
    return None


def _has_parameters_in(operation: dict[str, Any], location: str) -> bool:
    return any(
        isinstance(p, dict) and p.get("in") == location for p in operation.get("parameters", [])
    )


def error_codes(operation: dict[str, Any]) -> list[str]:
    """The error codes an operation can answer for reasons every route shares."""
    codes: list[str] = list(_ANY)
    if operation.get("security") != []:
        codes += _AUTHENTICATED
    if "requestBody" in operation:
        codes += _BODY
    if _has_parameters_in(operation, "query"):
        codes += _QUERY
    if _header_parameter(operation, "Idempotency-Key") is not None:
        codes += _IDEMPOTENT
    if_match = _header_parameter(operation, "If-Match")
    if if_match is not None:
        codes += _IF_MATCH
        if if_match.get("required"):
            codes += _IF_MATCH_REQUIRED
    return list(dict.fromkeys(codes))


class CommonResponsesPlugin(BasePlugin):
    """Adds the shared error responses and headers to every operation (see the module doc)."""

    def init_spec(self, spec: APISpec) -> None:
        # The error envelope as a named component, so the shared responses can refer to it;
        # a route's own ErrorSchema response resolves to the same component.
        spec.components.schema(ERROR_COMPONENT, schema=ErrorSchema)

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        for operation in (operations or {}).values():
            complete_operation(operation)


def complete_operation(operation: dict[str, Any]) -> None:
    """Adds the shared error responses, X-Request-Id and Idempotent-Replayed to one operation."""
    # flask-smorest keys responses by int, a manual @blp.doc by str; apispec cleans up later.
    # A bare name is flask-smorest's generic response (its @arguments adds 422 that way): ours
    # below replaces it with the codes this operation really answers.
    responses: dict[str, Any] = {
        str(status): response
        for status, response in operation.get("responses", {}).items()
        if not isinstance(response, str)
    }
    operation["responses"] = responses
    for number, codes in codes_by_status(error_codes(operation)).items():
        status = str(number)
        own_reasons = status in responses
        if own_reasons:
            # The route declared this status for its own reasons: keep them, add the shared ones.
            response = responses[status]
            response["description"] = f"{response.get('description', '')}; {describe_codes(codes)}"
        else:
            response = responses[status] = {
                "description": describe_codes(codes),
                "content": {"application/json": {"schema": dict(ERROR_REF)}},
            }
        if _RETRY_AFTER_CODES.intersection(codes):
            # Only some of the status's codes carry it (a 409 business rejection does not).
            # Every 503 says when to come back (unavailable, and a route's own
            # store_unavailable), so there it is required even beside a route's own reasons.
            response.setdefault("headers", {})["Retry-After"] = {
                **RETRY_AFTER_HEADER,
                "required": status == "503"
                or (not own_reasons and _RETRY_AFTER_CODES.issuperset(codes)),
            }
    idempotent = _header_parameter(operation, "Idempotency-Key") is not None
    for status, response in responses.items():
        headers = response.setdefault("headers", {})
        headers["X-Request-Id"] = REQUEST_ID_HEADER
        # The stored outcomes (API.md): a success or a final 409 rejection is replayed.
        if idempotent and (status.startswith("2") or status == "409"):
            headers["Idempotent-Replayed"] = IDEMPOTENT_REPLAYED_HEADER
