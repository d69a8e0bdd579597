"""OpenAPI post-processing: the error envelope, declared on every operation.

Every status >= 400 answers `{"error", "message", "details"}` (logfleet.api.exceptions); this
declares the statuses each kind of operation can really return, so that clients and schema-driven
tests know them.
"""

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message", "details"],
    "properties": {
        "error": {"type": "string", "example": "validation_error"},
        "message": {"type": "string", "example": "Invalid request parameters"},
        "details": {"type": "object", "additionalProperties": True, "example": {"email": "must be a valid email"}},
    },
}
DESCRIPTIONS = {
    "400": "Invalid input (validation_error or parse_error)",
    "401": "Missing, invalid or expired credentials",
    "403": "Not allowed for this role or key",
    "404": "Not found (also another organization's objects)",
    "405": "Method not allowed",
    "409": "Conflict with the current state",
    "410": "Gone",
    "413": "Request body too large",
    "415": "Unsupported media type",
    "429": "Rate limited (see Retry-After)",
    "503": "A dependency is unavailable; retry",
}
PUBLIC = ("/api/v1/schema", "/api/v1/docs")


def declare_errors(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"$ref": "#/components/schemas/Error"}
    for path, operations in result.get("paths", {}).items():
        if path in PUBLIC:
            continue
        for operation in operations.values():
            statuses = ["400", "401", "403", "404", "405", "409", "410", "413", "415", "429", "503"]
            responses = operation.setdefault("responses", {})
            for status in statuses:
                responses.setdefault(
                    status,
                    {"description": DESCRIPTIONS[status], "content": {"application/json": {"schema": reference}}},
                )
            responses.setdefault(
                "500", {"description": "Internal error (a bug)", "content": {"application/json": {"schema": reference}}}
            )
    return result
