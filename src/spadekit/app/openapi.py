"""The OpenAPI description of the app's request bodies and answers (the schema FastAPI serves at /openapi.json)."""
from __future__ import annotations

from spadekit.app.parsing import MAX_SEED

ERROR = {"application/json": {"schema": {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}}}
PNG = {"image/png": {"schema": {"type": "string", "format": "binary"}}}

GENERATE_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["label_map"],
                "properties": {
                    "label_map": {"type": "string", "format": "binary", "description": "PNG label map: label ids (greyscale / palette) or the model's palette colours. Resized (nearest) to the model's size."},
                    "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED, "default": 0, "description": "style seed (multimodal models)"},
                    "style_image": {"type": "string", "format": "binary", "description": "optional example photo whose style to follow (models with an image encoder)"},
                    "replace": {"type": "array", "items": {"type": "string"}, "description": "label replacements SOURCE=TARGET (names or ids), e.g. grass=snow"},
                },
            },
            "encoding": {"label_map": {"contentType": "image/png"}, "style_image": {"contentType": "image/png, image/jpeg"}},
        },
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "labels": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}, "description": "label ids, a list of rows"},
                    "label_map_png": {"type": "string", "description": "base64 PNG label map (instead of labels)"},
                    "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED, "default": 0},
                    "style_image_png": {"type": "string", "description": "base64 style photo (PNG or JPEG)"},
                    "replace": {"type": "array", "items": {"type": "string"}, "description": "SOURCE=TARGET pairs, e.g. grass=snow"},
                },
                "example": {"labels": [[156, 156, 156, 156], [123, 123, 123, 123]], "seed": 3, "replace": ["grass=snow"]},
            },
        },
    },
}
GENERATE_RESPONSES = {
    "200": {"description": "the generated image, at the model's size", "content": PNG},
    "400": {"description": "malformed JSON or multipart body", "content": ERROR},
    "413": {"description": "upload bytes or pixels over the limits", "content": ERROR},
    "415": {"description": "unsupported Content-Type", "content": ERROR},
    "422": {"description": "not an image, unknown label ids or colours, bad seed or replacement", "content": ERROR},
    "503": {"description": "the inference queue is full; retry after the Retry-After header's seconds", "content": ERROR},
}
LABEL_MAP_BODY = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {"type": "object", "required": ["label_map"], "properties": {
        "label_map": {"type": "string", "format": "binary", "description": "PNG label map (ids or palette colours)"}}}}},
}
