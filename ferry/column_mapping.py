"""One mapping entry: where a source column goes (a field, its phone type or address part), or nowhere.

The one model for a mapping entry wherever it appears: a mapping file, the
suggestions, the request, the run record and the remembered mappings.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel
from pydantic.dataclasses import dataclass as pydantic_dataclass

from ferry.catalog import ADDRESS_PARTS, PHONE_TYPES
from ferry.errors import ParameterError, Problem, problems_from_validation


@pydantic_dataclass(frozen=True, config=ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore"))
class ColumnMapping:
    """Where one source column goes: a field (and phone type or address part), or nowhere.

    One model for a mapping entry wherever it appears: a mapping file, the
    suggestions, the request, the run record and the remembered mappings. JSON
    names are camelCase (``sourceColumn``, ``targetFieldSlug``, ``valueType``,
    ``addressPart``, ``confidence``, ``reason``); snake_case is accepted too, and a
    column key such as ``"targetFieldSlug": "phone.mobile"`` is split into its field
    and phone type (or address part).
    """

    source_column: str = Field(description="Header of the column in the file.")
    target_field_slug: str | None = Field(
        default=None, description="Field slug (or column key such as `phone.mobile`); null ignores the column."
    )
    value_type: str | None = Field(default=None, description="Multi-value fields: mobile, work, home or fax.")
    address_part: str | None = Field(default=None, description="Address fields: street, street2, city, state, zip or country.")
    confidence: float = Field(default=1.0, description="How sure the suggestion was (0-1); a mapping a person gave is 1.0.")
    reason: str = Field(default="", description="Why the suggestion was made (suggestions only).")
    value_map: dict[str, str | bool | int | float | None] | None = Field(
        default=None,
        description='Cell value -> value to import, matched trimmed and case-insensitively, e.g. {"subscribed": true, '
        '"pending": null} (null imports the cell as empty); cells not listed are read as usual.',
    )

    def __post_init__(self) -> None:
        target, value_type, address_part = self.target_field_slug or None, self.value_type or None, self.address_part or None
        if target and "." in target and not (value_type or address_part):  # a column key: phone.mobile, address.city
            field_slug, sub = target.split(".", 1)
            if sub in PHONE_TYPES:
                target, value_type = field_slug, sub
            elif sub in ADDRESS_PARTS:
                target, address_part = field_slug, sub
            # else a key of a JSON field (attributes.shoe_size), or a part the plan refuses: kept as given
        object.__setattr__(self, "target_field_slug", target)
        object.__setattr__(self, "value_type", value_type)
        object.__setattr__(self, "address_part", address_part)

    @property
    def target_key(self) -> str | None:
        """The catalog column key this maps to: ``email``, ``phone.mobile``, ``address.city``."""
        if self.target_field_slug is None:
            return None
        sub = self.value_type or self.address_part
        return f"{self.target_field_slug}.{sub}" if sub else self.target_field_slug

    def __hash__(self) -> int:  # frozen, but value_map is a dict: hash what identifies the entry
        return hash((self.source_column, self.target_key))

    def to_json(self) -> dict:
        data = _MAPPING_ADAPTER.dump_python(self, mode="json", by_alias=True)
        if data["valueMap"] is None:  # only entries that carry one say so
            del data["valueMap"]
        return data

    def value_pairs(self) -> tuple[tuple[str, str | None], ...]:
        """The value map as (trimmed lower-case cell, text to read instead) pairs: true/false for booleans, None for empty."""
        return tuple((key.strip().lower(), replacement_text(value)) for key, value in (self.value_map or {}).items())

    @classmethod
    def from_json(cls, data: dict) -> ColumnMapping:
        """Read the JSON form; a missing or empty ``sourceColumn`` is a ParameterError, a null confidence is 1.0."""
        source = data.get("sourceColumn", data.get("source_column"))
        if not isinstance(source, str) or not source:
            raise ParameterError([Problem("sourceColumn", source, "is required: the source column's name")])
        if data.get("confidence", 0) is None:
            data = {**data, "confidence": 1.0}
        try:
            return _MAPPING_ADAPTER.validate_python(data)
        except ValidationError as exc:
            raise ParameterError(problems_from_validation(exc.errors(), root="mapping")) from None


_MAPPING_ADAPTER = TypeAdapter(ColumnMapping)


def replacement_text(value: str | bool | int | float | None) -> str | None:
    """A value-map value as the cell text it stands for (the column's own check then reads it)."""
    if value is None or isinstance(value, str):
        return value
    return str(value).lower() if isinstance(value, bool) else str(value)
