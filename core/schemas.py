"""Response envelope and the camelCase base model every API schema uses."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, field_validator
from pydantic.alias_generators import to_camel

from core.inputs import clean_strings, integral


class CamelModel(BaseModel):
    """API JSON is camelCase; Python stays snake_case."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class CleanModel(BaseModel):
    """Any input: no string field may hold a control character (see core/inputs.py)."""

    @field_validator("*")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        return clean_strings(value)


class InputModel(CamelModel, CleanModel):
    """Request bodies: unknown fields are an error, not silently ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _integral_numbers_are_integers(cls, value: Any) -> Any:
        """`8.0` is an integer in JSON Schema: it reaches an integer field as 8."""
        return integral(value)


class Envelope[T](BaseModel):
    success: bool = True
    data: T
    meta: dict[str, Any] | None = None


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True)


def ok(
    data: Any,
    *,
    status: int = 200,
    meta: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The success envelope: `{"success": true, "data": …, "meta": {…}}` (meta for lists)."""
    if isinstance(data, BaseModel):
        data = dump(data)
    elif isinstance(data, list):
        data = [dump(item) if isinstance(item, BaseModel) else item for item in data]
    body: dict[str, Any] = {"success": True, "data": data}
    if meta is not None:
        body["meta"] = meta
    return JSONResponse(body, status_code=status, headers=headers)
