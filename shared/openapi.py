"""The OpenAPI 2.0 (Swagger) document of the HTTP API: served at /api/openapi.json and exported as the
Power Automate custom connector's apiDefinition.swagger.json (one source of truth)."""

from __future__ import annotations

from typing import Any


def document() -> dict[str, Any]:
    return {"swagger": "2.0", "info": {"title": "Genesys Cloud outbound calls", "version": "1.0"}, "paths": {}}
