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

# ---- the canvas tools (canvas.py) ----------------------------------------------------------------
JPEG = {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}
ZIP = {"application/zip": {"schema": {"type": "string", "format": "binary"}}}
_STYLE_ENTRY = {"type": "object", "properties": {
    "id": {"type": "string"}, "name": {"type": "string"}, "kind": {"type": "string", "enum": ["preset", "upload"]},
    "thumbnail": {"type": "string", "description": "URL of the JPEG thumbnail"}}}
_SIZE_FIELD = {"type": "string", "default": "square",
               "description": "a size choice from GET /api/canvas (square, wide, panorama) or WIDTHxHEIGHT, e.g. 1024x256"}


def _errors(*codes: str) -> dict:
    text = {
        "400": "malformed multipart body",
        "404": "no such style in the gallery",
        "409": "no upscaler in this installation",
        "413": "upload bytes, pixels, size or project file over the limits",
        "415": "not multipart/form-data",
        "422": "a missing or invalid field (the message names it)",
        "503": "the inference queue is full; retry after the Retry-After header's seconds",
    }
    return {code: {"description": text[code], "content": ERROR} for code in codes}


def _multipart(required: list[str], properties: dict, encoding: dict | None = None) -> dict:
    media = {"schema": {"type": "object", "required": required, "properties": properties}}
    if encoding:
        media["encoding"] = encoding
    return {"required": True, "content": {"multipart/form-data": media}}


RENDER_BODY = _multipart(["label_map"], {
    "label_map": {"type": "string", "format": "binary",
                  "description": "PNG label map (ids or palette colours): the composite of the visible layers; resized (nearest) to the size"},
    "size": _SIZE_FIELD,
    "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED, "default": 0, "description": "style seed (multimodal models)"},
    "style": {"type": "string", "description": "a style id from GET /api/styles (preset or upload)"},
    "style_image": {"type": "string", "format": "binary", "description": "a style photo sent with the request (instead of style)"},
}, {"label_map": {"contentType": "image/png"}, "style_image": {"contentType": "image/png, image/jpeg"}})
RENDER_RESPONSES = {
    "200": {"description": "the generated image at the size (X-Size header: WIDTHxHEIGHT)", "content": PNG},
    **_errors("400", "404", "413", "415", "422", "503"),
}
STYLE_UPLOAD_BODY = _multipart(["image"], {
    "image": {"type": "string", "format": "binary", "description": "a style photo (PNG, JPEG, WEBP, ...)"},
    "name": {"type": "string", "description": "its name in the gallery (default: the file name)"},
}, {"image": {"contentType": "image/png, image/jpeg"}})
STYLE_UPLOAD_RESPONSES = {
    "200": {"description": "the new gallery entry", "content": {"application/json": {"schema": _STYLE_ENTRY}}},
    **_errors("400", "413", "415", "422"),
}
UPSCALE_BODY = _multipart(["image"], {
    "image": {"type": "string", "format": "binary", "description": "the image to upscale (PNG)"},
    "scale": {"type": "integer", "enum": [2, 4], "default": 4},
}, {"image": {"contentType": "image/png"}})
UPSCALE_RESPONSES = {
    "200": {"description": "the upscaled image (X-Size header: WIDTHxHEIGHT)", "content": PNG},
    **_errors("400", "409", "413", "415", "422", "503"),
}
_PROJECT_SETTINGS = {
    "type": "object", "required": ["width", "height", "layers"],
    "properties": {
        "width": {"type": "integer"}, "height": {"type": "integer"},
        "size": {"type": "string", "description": "the size choice's name, or custom"},
        "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED},
        "background": {"type": "integer", "description": "label id shown where every layer is transparent"},
        "style": {"type": ["string", "null"], "description": "a gallery style id"},
        "layers": {"type": "array", "description": "bottom first", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "visible": {"type": "boolean"}}}},
    },
    "example": {"width": 1024, "height": 256, "size": "panorama", "seed": 3, "background": 156, "style": "meadow",
                "layers": [{"name": "Ground", "visible": True}, {"name": "Trees", "visible": True}]},
}
PROJECT_SAVE_BODY = _multipart(["project", "layer"], {
    "project": {**_PROJECT_SETTINGS, "description": "the settings, as JSON text"},
    "layer": {"type": "array", "items": {"type": "string", "format": "binary"},
              "description": "one RGBA PNG per layer, bottom first: palette colours, alpha 0 where the layer is empty"},
}, {"project": {"contentType": "application/json"}, "layer": {"contentType": "image/png"}})
PROJECT_SAVE_RESPONSES = {
    "200": {"description": "the project file (a zip: project.json + one PNG per layer)", "content": ZIP},
    **_errors("400", "404", "413", "415", "422"),
}
PROJECT_OPEN_BODY = _multipart(["project"], {
    "project": {"type": "string", "format": "binary", "description": "a project file saved by /api/projects/save"},
}, {"project": {"contentType": "application/zip"}})
PROJECT_OPEN_RESPONSES = {
    "200": {"description": "the project's settings and layers (base64 RGBA PNGs, bottom first)", "content": {"application/json": {"schema": {
        "type": "object", "properties": {
            **_PROJECT_SETTINGS["properties"],
            "format": {"type": "string"}, "version": {"type": "integer"}, "label_set": {"type": "string"},
            "layers": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "visible": {"type": "boolean"}, "png": {"type": "string", "description": "base64 RGBA PNG"}}}},
            "notes": {"type": "array", "items": {"type": "string"}}}}}}},
    **_errors("400", "413", "415", "422"),
}
EXPORT_BODY = _multipart([], {
    "label_map": {"type": "string", "format": "binary", "description": "a PNG label map (ids or palette colours)"},
    "project": {"type": "string", "format": "binary", "description": "or a project file: its visible layers' composite"},
    "format": {"type": "string", "enum": ["color", "ids"], "default": "color",
               "description": "color: the palette's colours; ids: raw label ids as a greyscale PNG (16-bit when an id is over 255)"},
}, {"label_map": {"contentType": "image/png"}, "project": {"contentType": "application/zip"}})
EXPORT_RESPONSES = {
    "200": {"description": "the label map as a PNG", "content": PNG},
    **_errors("400", "413", "415", "422"),
}
