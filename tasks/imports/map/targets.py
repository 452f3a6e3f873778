"""The target side of a mapping: the resource and fields a source column can go to, and :class:`ColumnMapping`."""

from __future__ import annotations

from dataclasses import dataclass

from ferry.catalog import PHONE_TYPES, RESOURCES, Field, Resource, get_resource
from ferry.errors import ParameterError, Problem


@dataclass(frozen=True)
class ColumnMapping:
    """Where one source column goes: a field (and phone type or address part), or nowhere."""

    source_column: str
    target_field_slug: str | None
    value_type: str | None = None
    address_part: str | None = None
    confidence: float = 0.0
    reason: str = ""

    @property
    def target_key(self) -> str | None:
        """The catalog column key this maps to: ``email``, ``phone.mobile``, ``address.city``."""
        if self.target_field_slug is None:
            return None
        sub = self.value_type or self.address_part
        return f"{self.target_field_slug}.{sub}" if sub else self.target_field_slug

    def to_json(self) -> dict:
        return {
            "sourceColumn": self.source_column,
            "targetFieldSlug": self.target_field_slug,
            "valueType": self.value_type,
            "addressPart": self.address_part,
            "confidence": self.confidence,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: dict) -> ColumnMapping:
        """Read the JSON form (camelCase, as printed by the CLI; snake_case accepted too)."""

        def get(camel: str, snake: str, default=None):
            return data.get(camel, data.get(snake, default))

        source = get("sourceColumn", "source_column")
        if not isinstance(source, str) or not source:
            raise ParameterError([Problem("sourceColumn", source, "is required: the source column's name")])
        confidence = get("confidence", "confidence", 1.0)
        target = get("targetFieldSlug", "target_field_slug") or None
        value_type = get("valueType", "value_type") or None
        address_part = get("addressPart", "address_part") or None
        if target and "." in target and not (value_type or address_part):  # a column key: phone.mobile, address.city
            target, sub = target.split(".", 1)
            if sub in PHONE_TYPES:
                value_type = sub
            else:
                address_part = sub
        return cls(
            source_column=source,
            target_field_slug=target,
            value_type=value_type,
            address_part=address_part,
            confidence=float(confidence if confidence is not None else 1.0),
            reason=get("reason", "reason", "") or "",
        )


# --- target fields ------------------------------------------------------------------------------


def importable_resource(resource: Resource | str) -> Resource:
    found = get_resource(resource) if isinstance(resource, str) else resource
    if not found.importable:
        importable = ", ".join(r.slug for r in RESOURCES.values() if r.importable)
        raise ParameterError([Problem("resource", found.slug, f"is export-only; import into one of: {importable}")])
    return found


def importable_fields(resource: Resource) -> list[Field]:
    return [f for f in resource.fields if not f.readonly]


def target_fields(resource: Resource | str) -> list[dict]:
    """The fields a source column can map to: slug, label, type, and phone value types or address parts."""
    resource = importable_resource(resource)
    return [
        {
            "slug": f.slug,
            "label": f.label,
            "type": f.type.value,
            "required": f.required,
            "unique": f.unique,
            "valueTypes": list(f.value_types),
            "addressParts": list(f.parts),
            "aliases": list(f.aliases),
        }
        for f in importable_fields(resource)
    ]
