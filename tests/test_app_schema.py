"""Schemathesis fuzzes every operation of the app's OpenAPI schema: no request may cause a server error (5xx)."""
from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from app_doubles import tiny_landscape_pipeline
from spadekit.app.server import Limits, create_app

# Built at import: schemathesis' lazy fixture loader does not work with pytest 9. A 64x64 model builds in well under a second.
app = create_app(tiny_landscape_pipeline(size=64), max_workers=1, max_queue=64,
                 limits=Limits(max_upload_bytes=256 * 1024, max_pixels=256 * 256))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
# valid requests and deliberately invalid ones (wrong types, missing fields): both must get a 2xx/4xx answer
schema.config.generation.update(modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    case.call_and_validate(checks=[not_a_server_error])
