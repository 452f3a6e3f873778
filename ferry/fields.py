"""The catalog's building blocks: field types, fields, their flat columns and resources (``ferry.catalog`` declares them).

A *field* is what a user thinks of ("phone", "address"); a *column* is one flat
cell of it ("phone.mobile", "address.city"). Simple fields have exactly one
column whose key is the field slug.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import pyarrow as pa


class FieldType(StrEnum):
    TEXT = "text"
    EMAIL = "email"
    PHONE = "phone"
    URL = "url"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    ENUM = "enum"
    JSON = "json"
    REFERENCE = "reference"
    MULTI_VALUE = "multi_value"
    ADDRESS = "address"


ADDRESS_PARTS = ("street", "street2", "city", "state", "zip", "country")
PHONE_TYPES = ("mobile", "work", "home", "fax")

#: The Arrow type of each field type, declared once for extract, import staging and the serializers.
ARROW_TYPES: dict[FieldType, pa.DataType] = {
    FieldType.TEXT: pa.string(),
    FieldType.EMAIL: pa.string(),
    FieldType.PHONE: pa.string(),
    FieldType.URL: pa.string(),
    FieldType.INTEGER: pa.int64(),
    FieldType.NUMBER: pa.float64(),
    FieldType.BOOLEAN: pa.bool_(),
    FieldType.DATE: pa.date32(),
    FieldType.DATETIME: pa.timestamp("us", tz="UTC"),
    FieldType.ENUM: pa.string(),
    FieldType.JSON: pa.string(),  # raw JSON text; serializers embed it as JSON
    FieldType.REFERENCE: pa.string(),  # the referenced record's key, e.g. a company name
}


def arrow_type(field_type: FieldType, *, naive_utc: bool = False) -> pa.DataType:
    """The field type's Arrow type (text for composite types); ``naive_utc``: datetimes without a zone, as the store keeps them."""
    if naive_utc and field_type is FieldType.DATETIME:
        return pa.timestamp("us")
    return ARROW_TYPES.get(field_type, pa.string())


@dataclass(frozen=True)
class Column:
    """One flat cell of a field: what an export writes and an import maps to."""

    key: str
    label: str
    type: FieldType
    store_column: str
    field_slug: str
    part: str | None = None

    @property
    def arrow_type(self) -> pa.DataType:
        return ARROW_TYPES[self.type]


@dataclass(frozen=True)
class Field:
    slug: str
    label: str
    type: FieldType
    description: str = ""
    required: bool = False
    unique: bool = False
    aliases: tuple[str, ...] = ()
    enum: tuple[str, ...] = ()
    reference: str | None = None  # resource slug the value points to (matched by its key)
    item_type: FieldType | None = None  # multi-value: the type of each value
    value_types: tuple[str, ...] = ()  # multi-value: e.g. mobile, work, home, fax
    parts: tuple[str, ...] = ()  # address: street, street2, city, state, zip, country
    readonly: bool = False  # set by the store (ids, timestamps)
    #: Read-only, but an import that *creates* a record may carry the source system's value (its record
    #: timestamps), as Salesforce's "set audit fields upon record creation" lets migrations keep their history.
    source_settable: bool = False
    #: A JSON object of custom properties the catalog has no field for: an import maps columns into its keys
    #: (``attributes.shoe_size``), and ``keep_unmapped`` puts every unmapped column there.
    custom_attributes: bool = False

    @property
    def importable(self) -> bool:
        """Whether an import may map a column to this field."""
        return not self.readonly or self.source_settable

    def columns(self) -> list[Column]:
        if self.type is FieldType.MULTI_VALUE:
            item = self.item_type or FieldType.TEXT
            return [Column(f"{self.slug}.{v}", f"{self.label} ({v})", item, f"{self.slug}_{v}", self.slug, v) for v in self.value_types]
        if self.type is FieldType.ADDRESS:
            return [Column(f"{self.slug}.{p}", f"{self.label} ({p})", FieldType.TEXT, f"{self.slug}_{p}", self.slug, p) for p in self.parts]
        store = f"{self.slug}_id" if self.type is FieldType.REFERENCE else self.slug
        return [Column(self.slug, self.label, self.type, store, self.slug)]


@dataclass(frozen=True)
class Resource:
    slug: str
    label: str
    table: str
    fields: tuple[Field, ...]
    description: str = ""
    aliases: tuple[str, ...] = ()
    time_column: str | None = None
    key_fields: tuple[str, ...] = ()
    max_span_days: int | None = None  # longest allowed from/to window on exports
    importable: bool = True
    _by_slug: dict[str, Field] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_slug.update({f.slug: f for f in self.fields})

    def get_field(self, slug: str) -> Field:
        return self._by_slug[slug]

    def has_field(self, slug: str) -> bool:
        return slug in self._by_slug

    @property
    def attributes_field(self) -> Field | None:
        """The field that keeps custom properties (``custom_attributes``), if the resource has one."""
        return next((f for f in self.fields if f.custom_attributes), None)

    def columns(self) -> list[Column]:
        return [c for f in self.fields for c in f.columns()]

    def column(self, key: str) -> Column | None:
        return next((c for c in self.columns() if c.key == key), None)

    def default_export_keys(self) -> list[str]:
        return [c.key for c in self.columns()]
