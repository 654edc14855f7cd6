"""Responses serialized once.

A route that returns a model has FastAPI validate it against the route's `response_model` and then serialize
it: a second pass over what the server just built from its own records. Hot routes return `serialized(model)`
instead; their `response_model` still documents the body in the OpenAPI schema.
"""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel

JSON = "application/json"


def serialized(model: BaseModel, status_code: int = 200) -> Response:
    return Response(model.__pydantic_serializer__.to_json(model), status_code=status_code, media_type=JSON)
