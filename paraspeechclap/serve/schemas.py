"""Request-body and error schemas for the OpenAPI page and the fuzzer (the handlers parse bodies themselves, JSON or
multipart, and answer every malformed body with a 4xx naming the field)."""
from __future__ import annotations

from ..prompts import DEFAULT_TEMPLATE
from ..rerank.shaping import SHAPINGS

AUDIO = {"description": "the clip: {\"base64\": \"<bytes of a wav/flac/ogg file>\"} or {\"path\": \"...\"} (only under "
                        "the server's --allow-root); in multipart, a file field",
         "oneOf": [{"type": "object", "properties": {"base64": {"type": "string", "format": "byte"}}, "required": ["base64"]},
                   {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}]}
TEXT = {"type": "string", "minLength": 1, "maxLength": 1000, "pattern": r"\S"}
STRINGS = {"type": "array", "items": TEXT, "minItems": 1, "maxItems": 64}
FILE = {"type": "string", "format": "binary"}

SCORE = {"type": "object", "required": ["audio", "captions"],
         "properties": {"audio": AUDIO, "captions": STRINGS}}
CLASSIFY = {"type": "object", "required": ["audio"],
            "properties": {"audio": AUDIO, "candidates": STRINGS,
                           "attributes": {"description": "{name: [classes]} or \"default\" (the model's table)",
                                          "oneOf": [{"type": "object", "additionalProperties": STRINGS},
                                                    {"type": "string", "enum": ["default"]}]},
                           "template": {"type": "string", "pattern": r"^[^{}]*\{\}[^{}]*$",
                                        "example": DEFAULT_TEMPLATE}}}
EMBED = {"type": "object", "properties": {"audio": {"oneOf": [AUDIO, {"type": "array", "items": AUDIO, "maxItems": 128}]},
                                          "texts": {**STRINGS, "maxItems": 128}}}
REWARD = {"type": "object", "required": ["items"],
          "properties": {"items": {"type": "array", "items": {
              "type": "object", "required": ["audio", "caption"],
              "properties": {"audio": AUDIO, "caption": TEXT,
                             "group": {"oneOf": [{"type": "string"}, {"type": "integer"}],
                                       "description": "group id for group_norm (default: the caption)"}}},
              "minItems": 1, "maxItems": 128},
              "shaping": {"type": "string", "enum": list(SHAPINGS), "default": "cosine"}}}
TIMELINE = {"type": "object", "required": ["audio", "captions"],
            "properties": {"audio": AUDIO, "captions": STRINGS,
                           "window_seconds": {"type": "number", "default": 3.0, "minimum": 0.1, "maximum": 60},
                           "hop_seconds": {"type": "number", "default": 1.0, "minimum": 0.05, "maximum": 60}}}
MAX_ROW = 2**62  # an index's rows are int64 keys; a larger number cannot be one
ROW = {"type": "integer", "minimum": 0, "maximum": MAX_ROW}
LIKE = {"description": "an example clip to find clips like: {\"base64\": ...} or {\"path\": ...} (under "
                       "--allow-root), or the row of an indexed clip (\"more like this\": the clip itself is left out)",
        "oneOf": [*AUDIO["oneOf"], ROW]}
SEARCH = {"type": "object", "anyOf": [{"required": ["text"]}, {"required": ["like"]}],
          "properties": {"text": TEXT, "like": LIKE,
                         "k": {"type": "integer", "default": 10, "minimum": 1, "maximum": 100},
                         "filters": {"type": "object", "additionalProperties": {"type": "string"}},
                         "min_duration": {"type": "number"}, "max_duration": {"type": "number"}}}

ERROR = {"type": "object", "required": ["error", "code"],
         "properties": {"error": {"type": "string"}, "code": {"type": "string"}}}
ERRORS = {400: "malformed body or field (the message names it)", 401: "token missing or wrong",
          403: "path outside the root, or Host / Origin not allowed", 404: "no such file, clip or index",
          408: "the body did not arrive in time", 413: "too large, too long or too costly",
          415: "neither JSON nor multipart", 429: "busy: retry after Retry-After seconds",
          499: "the client closed the connection", 504: "the model did not answer in time"}
RESPONSES = {status: {"description": text, "content": {"application/json": {"schema": ERROR}}}
             for status, text in ERRORS.items()}


def _multipart(schema: dict) -> dict:
    properties = {}
    for name, value in schema.get("properties", {}).items():
        if value is AUDIO or name == "audio":
            properties[name] = FILE
        elif value.get("type") == "array":
            properties[name] = value
        elif value.get("type") == "object" or "oneOf" in value:
            properties[name] = {"type": "string", "description": "JSON text"}
        else:
            properties[name] = value
    return {"type": "object", "required": schema.get("required", []), "properties": properties}


def body(schema: dict, multipart: bool = True) -> dict:
    content = {"application/json": {"schema": schema}}
    if multipart:
        content["multipart/form-data"] = {"schema": _multipart(schema)}
    return {"requestBody": {"required": True, "content": content}}
