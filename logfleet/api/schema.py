"""The OpenAPI schema says what the server does: shared mechanisms, so that every endpoint (also the
ones added later) is described by the same rules that validate it.

- `AutoSchema` (DEFAULT_SCHEMA_CLASS): a `ClosedSerializer` is `additionalProperties: false`; a
  field that stays required in a PATCH (`VersionField`) is declared required there too.
- `LabelFiltersFieldScheme`: `?label=key:value` is an array of strings whose key matches the
  endpoint's key rule.
- `declare_errors` (a postprocessing hook): every status >= 400 an operation can answer carries
  the error envelope `{"error", "message", "details"}` (logfleet.api.exceptions), also where a view
  declared only a description; anonymous operations declare `security: []`; each create links to
  the retrieve, update and delete of what it created (OpenAPI links, followed by stateful tests
  and usable by clients).
"""

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import force_instance, is_patched_serializer
from rest_framework import serializers

from logfleet.api.fields import ClosedSerializer, json_schema_pattern

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message", "details"],
    "properties": {
        "error": {"type": "string", "example": "validation_error"},
        "message": {"type": "string", "example": "Invalid request parameters"},
        "details": {
            "type": "object",
            "additionalProperties": True,
            "description": "For field errors: the field's dotted path → one readable string; otherwise what the "
            "error adds (`current_version` of a version conflict, `max_bytes` of a body too large...)",
            "example": {"email": "must be a valid email"},
        },
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
    "500": "Internal error (a bug)",
    "503": "A dependency is unavailable; retry",
}
ERROR_STATUSES = ("400", "401", "403", "404", "405", "409", "410", "413", "415", "429", "500", "503")
PUBLIC = ("/api/v1/schema", "/api/v1/docs")
ERROR_REFERENCE = {"$ref": "#/components/schemas/Error"}


class AutoSchema(SpectacularAutoSchema):
    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        # A CharField trims whitespace before it checks for blank: "  " is refused as blank, so a
        # value must hold something else than whitespace (`minLength: 1` alone would allow " ").
        if (
            direction == "request"
            and isinstance(field, serializers.CharField)
            and field.trim_whitespace
            and not field.allow_blank
            and schema
            and "pattern" not in schema
            and "string" in (schema.get("type") if isinstance(schema.get("type"), list) else [schema.get("type")])
        ):
            schema["pattern"] = r"\S"
        # A list of objects (`many=True`) keeps its bounds, as a ListField's do.
        if isinstance(field, serializers.ListSerializer) and schema and schema.get("type") == "array":
            if field.min_length is not None:
                schema["minItems"] = field.min_length
            if field.max_length is not None:
                schema["maxItems"] = field.max_length
        return schema

    def _map_basic_serializer(self, serializer, direction):
        result = super()._map_basic_serializer(serializer, direction)
        serializer = force_instance(serializer)
        if direction == "request" and isinstance(serializer, ClosedSerializer):
            result["additionalProperties"] = False
        if direction == "request" and is_patched_serializer(serializer, direction):
            required = sorted(
                name
                for name, field in serializer.fields.items()
                if getattr(field, "required_when_partial", False) and not field.read_only
            )
            if required:
                result["required"] = required
        return result


class LabelFiltersFieldScheme(OpenApiSerializerFieldExtension):
    target_class = "logfleet.api.fields.LabelFiltersField"

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        return {
            "type": "array",
            "items": {
                "type": "string",
                "minLength": 2,
                "maxLength": field.child.max_length,
                "pattern": json_schema_pattern(field.key_re, then=":"),
            },
            "maxItems": field.max_length,
            "description": "`key:value` (the value may be empty); repeat to require several",
        }


def declare_errors(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        if path in PUBLIC:
            continue
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status in ERROR_STATUSES:
                declared = responses.setdefault(status, {"description": DESCRIPTIONS[status]})
                declared["content"] = {"application/json": {"schema": ERROR_REFERENCE}}
            if operation.get("security") == [{}]:
                operation["security"] = []  # no credentials at all (a token sent is not even read)
    _link_creates(result)
    return result


def _component(schemas: dict, schema: dict) -> str | None:
    reference = schema.get("$ref", "")
    return reference.rsplit("/", 1)[-1] if reference.startswith("#/components/schemas/") else None


def _created(schemas: dict, response: dict) -> tuple[str, str] | None:
    """(the component of what a 201 answer created, the runtime expression of its id)."""
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    name = _component(schemas, schema)
    if name is None:
        return None
    properties = schemas.get(name, {}).get("properties", {})
    if "id" in properties:
        return name, "$response.body#/id"
    for key, value in properties.items():  # {api_key: APIKey, raw_key}, {session_id, ..., session: StreamSession}
        inner = _component(schemas, value)
        if inner is not None and "id" in schemas.get(inner, {}).get("properties", {}):
            return inner, f"$response.body#/{key}/id"
    return None


def _link_creates(result: dict) -> None:
    """Each 201 links to every operation on the item path (and its sub-paths) of what it created: the
    item path is the one whose GET answers the created object's component."""
    schemas = result.get("components", {}).get("schemas", {})
    paths = result.get("paths", {})
    items = {}  # component → (item path, its path parameter)
    for path, operations in paths.items():
        get = operations.get("get", {})
        parameters = [p["name"] for p in get.get("parameters", []) if p.get("in") == "path"]
        schema = get.get("responses", {}).get("200", {}).get("content", {}).get("application/json", {})
        name = _component(schemas, schema.get("schema", {}))
        if name and len(parameters) == 1 and path.endswith("{" + parameters[0] + "}"):
            items.setdefault(name, (path, parameters[0]))
    for operations in paths.values():
        for operation in operations.values():
            response = operation.get("responses", {}).get("201")
            created = response and _created(schemas, response)
            if not created or created[0] not in items:
                continue
            item_path, parameter = items[created[0]]
            links = {}
            for path, targets in paths.items():
                if path != item_path and not path.startswith(item_path + "/"):
                    continue
                for target in targets.values():
                    if target is operation:
                        continue
                    operation_id = target["operationId"]
                    links[operation_id] = {"operationId": operation_id, "parameters": {parameter: created[1]}}
            if links:
                response["links"] = links
