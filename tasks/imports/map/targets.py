"""The target side of a mapping: the resource and fields a source column can go to, and :class:`ColumnMapping`."""

from __future__ import annotations

from ferry.catalog import RESOURCES, Field, Resource, get_resource
from ferry.errors import ParameterError, Problem

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
