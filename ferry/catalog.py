"""The resource catalog: every resource's fields, declared once.

Export columns, import mapping and validation, the store schema's column
names and the README's resource tables all read this module. A *field* is what
a user thinks of ("phone", "address"); a *column* is one flat cell of it
("phone.mobile", "address.city"). Simple fields have exactly one column whose
key is the field slug.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import pyarrow as pa

from ferry.errors import UnknownResourceError


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

    def columns(self) -> list[Column]:
        return [c for f in self.fields for c in f.columns()]

    def column(self, key: str) -> Column | None:
        return next((c for c in self.columns() if c.key == key), None)

    def default_export_keys(self) -> list[str]:
        return [c.key for c in self.columns()]


def _f(slug: str, label: str, type_: FieldType = FieldType.TEXT, **kw) -> Field:
    return Field(slug=slug, label=label, type=type_, **kw)


T = FieldType
_ID = _f("id", "Ferry ID", T.INTEGER, readonly=True, unique=True, description="Ferry's own record id.")
_CREATED = _f(
    "created_at",
    "Created at",
    T.DATETIME,
    readonly=True,
    source_settable=True,
    aliases=("created", "date created", "signup date", "date added", "create date", "created date", "creation date"),
    description="When the record was created; an import that creates a record may set it (the source's own date).",
)
_UPDATED = _f(
    "updated_at",
    "Updated at",
    T.DATETIME,
    readonly=True,
    source_settable=True,
    aliases=("updated", "last modified", "modified", "last modified date", "date modified", "last updated"),
    description="When the record last changed; set by every write, or by an import that creates the record (the source's date).",
)

CONTACTS = Resource(
    slug="contacts",
    label="Contacts",
    table="contacts",
    aliases=("profiles", "contact", "profile", "people"),
    description="People: customers, leads and subscribers.",
    time_column="created_at",
    key_fields=("email",),
    fields=(
        _ID,
        _f(
            "external_id",
            "External ID",
            unique=True,
            aliases=("record id", "contact id", "customer id", "vendor id", "hubspot id", "salesforce id", "id in crm"),
            description="The record's id in the system it came from.",
        ),
        _f("email", "E-mail", T.EMAIL, required=True, unique=True, aliases=("email address", "e-mail address", "mail", "email_address")),
        _f("first_name", "First name", aliases=("firstname", "given name", "fname", "first")),
        _f("last_name", "Last name", aliases=("lastname", "surname", "family name", "lname", "last")),
        _f("full_name", "Full name", aliases=("name", "contact name", "display name")),
        _f("phone", "Phone", T.MULTI_VALUE, item_type=T.PHONE, value_types=PHONE_TYPES, aliases=("phone number", "telephone", "tel")),
        _f(
            "company",
            "Company",
            T.REFERENCE,
            reference="accounts",
            aliases=("company name", "account", "organization", "organisation", "employer"),
        ),
        _f("job_title", "Job title", aliases=("title", "position", "role")),
        _f("address", "Address", T.ADDRESS, parts=ADDRESS_PARTS, aliases=("mailing address", "postal address")),
        _f(
            "lifecycle_stage",
            "Lifecycle stage",
            T.ENUM,
            enum=("subscriber", "lead", "opportunity", "customer", "evangelist", "other"),
            aliases=("lifecycle", "stage", "status"),
        ),
        _f(
            "email_consent",
            "E-mail consent",
            T.BOOLEAN,
            aliases=("email opt in", "subscribed", "accepts marketing", "email marketing consent"),
        ),
        _f("sms_consent", "SMS consent", T.BOOLEAN, aliases=("sms opt in", "accepts sms marketing")),
        _f("tags", "Tags", T.JSON, aliases=("labels",), description="A JSON array of tag names."),
        _f("notes", "Notes", aliases=("note", "comments", "description")),
        _f("source", "Source", aliases=("lead source", "original source", "acquisition source")),
        _f("owner", "Owner", aliases=("contact owner", "account owner", "assigned to")),
        _f("ip_address", "IP address", aliases=("ip", "last ip")),
        _f("timezone", "Time zone", aliases=("time zone", "tz")),
        _f("latitude", "Latitude", T.NUMBER, aliases=("lat",)),
        _f("longitude", "Longitude", T.NUMBER, aliases=("lng", "lon", "long")),
        _f("lifetime_value", "Lifetime value", T.NUMBER, aliases=("ltv", "total spent", "clv")),
        _f("orders_count", "Orders", T.INTEGER, aliases=("orders", "total orders", "number of orders")),
        _CREATED,
        _UPDATED,
    ),
)

ACCOUNTS = Resource(
    slug="accounts",
    label="Accounts",
    table="accounts",
    aliases=("companies", "company", "organizations"),
    description="Companies that contacts belong to.",
    time_column="created_at",
    key_fields=("name",),
    fields=(
        _ID,
        _f("external_id", "External ID", unique=True, aliases=("company id", "account id", "record id")),
        _f("name", "Name", required=True, unique=True, aliases=("company name", "account name", "company")),
        _f("domain", "Domain", T.URL, aliases=("website", "company domain", "url")),
        _f("industry", "Industry"),
        _f("employees", "Employees", T.INTEGER, aliases=("number of employees", "headcount")),
        _CREATED,
        _UPDATED,
    ),
)

EVENTS = Resource(
    slug="events",
    label="Events",
    table="events",
    aliases=("activities", "activity", "event"),
    description="Things contacts did: page views, purchases, e-mail opens.",
    time_column="occurred_at",
    key_fields=("external_id",),
    max_span_days=31,
    fields=(
        _ID,
        _f("external_id", "External ID", unique=True, aliases=("event id",)),
        _f("type", "Type", required=True, aliases=("event type", "activity type", "event name")),
        _f("occurred_at", "Occurred at", T.DATETIME, required=True, aliases=("timestamp", "time", "date")),
        _f("contact", "Contact", T.REFERENCE, reference="contacts", aliases=("contact email", "email")),
        _f("properties", "Properties", T.JSON, aliases=("data", "payload")),
    ),
)

SURVEY_RESPONSES = Resource(
    slug="survey_responses",
    label="Survey responses",
    table="survey_responses",
    aliases=("surveys", "responses", "survey_response"),
    description="Answers to survey questions.",
    time_column="submitted_at",
    key_fields=("external_id",),
    max_span_days=92,
    fields=(
        _ID,
        _f("external_id", "External ID", unique=True, aliases=("response id",)),
        _f("survey", "Survey", required=True, aliases=("survey name", "form")),
        _f("question", "Question", required=True),
        _f("answer", "Answer", aliases=("response", "value")),
        _f("contact", "Contact", T.REFERENCE, reference="contacts", aliases=("contact email", "email")),
        _f("submitted_at", "Submitted at", T.DATETIME, required=True, aliases=("submitted", "date", "timestamp")),
    ),
)

LISTS = Resource(
    slug="lists",
    label="Lists",
    table="lists",
    description="Static lists of contacts (see list memberships).",
    time_column="created_at",
    key_fields=("key",),
    fields=(
        _ID,
        _f("key", "Key", required=True, unique=True, aliases=("list key", "list id")),
        _f("name", "Name", required=True, aliases=("list name",)),
        _CREATED,
    ),
)

LIST_MEMBERSHIPS = Resource(
    slug="list_memberships",
    label="List memberships",
    table="list_memberships",
    aliases=("memberships",),
    description="Which contact is on which list.",
    time_column="added_at",
    key_fields=("list", "contact"),
    fields=(
        _f("list", "List", T.REFERENCE, reference="lists", required=True),
        _f("contact", "Contact", T.REFERENCE, reference="contacts", required=True),
        _f("added_at", "Added at", T.DATETIME, readonly=True),
    ),
)

SEGMENTS = Resource(
    slug="segments",
    label="Segments",
    table="segments",
    aliases=("audiences",),
    description="Saved, named filter rules over contacts; the key is the audience key.",
    time_column="created_at",
    key_fields=("key",),
    fields=(
        _ID,
        _f("key", "Audience key", required=True, unique=True, aliases=("audience key", "segment key")),
        _f("name", "Name", required=True),
        _f(
            "rule",
            "Rule",
            T.JSON,
            required=True,
            description='A JSON list of filters, e.g. [{"field": "lifecycle_stage", "op": "eq", "value": "customer"}].',
        ),
        _CREATED,
    ),
)

WORKFLOWS = Resource(
    slug="workflows",
    label="Workflows",
    table="workflows",
    aliases=("automations",),
    description="Automation definitions: what starts a workflow (its trigger) and the steps it runs.",
    time_column="created_at",
    key_fields=("key",),
    fields=(
        _ID,
        _f("key", "Key", required=True, unique=True, aliases=("workflow key", "workflow id", "automation id")),
        _f("name", "Name", required=True, aliases=("workflow name", "title")),
        _f("status", "Status", T.ENUM, enum=("draft", "active", "paused", "archived"), aliases=("state",)),
        _f("trigger", "Trigger", description="What starts it, e.g. `event:signup` or `segment:30_day_engaged`.", aliases=("trigger type",)),
        _f("steps", "Steps", T.JSON, description='A JSON list of steps, e.g. [{"type": "email", "template": "welcome"}].'),
        _CREATED,
        _UPDATED,
    ),
)

CATALOGS = Resource(
    slug="catalogs",
    label="Catalogs",
    table="catalogs",
    description="Named product catalogs.",
    key_fields=("key",),
    fields=(_ID, _f("key", "Key", required=True, unique=True), _f("name", "Name", required=True)),
)

SCHEMAS = Resource(
    slug="schemas",
    label="Schemas",
    table="schemas",
    description="Product schemas: the attribute set a product follows.",
    key_fields=("key",),
    fields=(
        _ID,
        _f("key", "Key", required=True, unique=True),
        _f("name", "Name", required=True),
        _f("attributes", "Attributes", T.JSON, description="A JSON list of attribute names."),
    ),
)

PRODUCTS = Resource(
    slug="products",
    label="Products",
    table="products",
    aliases=("product", "items"),
    description="Products of a catalog; localized fields take a dimension scope on export.",
    time_column="updated_at",
    key_fields=("sku",),
    fields=(
        _ID,
        _f("sku", "SKU", required=True, unique=True, aliases=("product id", "item id", "handle")),
        _f("name", "Name", required=True, aliases=("product name", "title")),
        _f("description", "Description", aliases=("body", "body html")),
        _f("catalog", "Catalog", T.REFERENCE, reference="catalogs", required=True),
        _f("schema", "Schema", T.REFERENCE, reference="schemas"),
        _f("price", "Price", T.NUMBER, aliases=("unit price",)),
        _f("currency", "Currency", aliases=("currency code",)),
        _f("active", "Active", T.BOOLEAN, aliases=("published", "enabled")),
        _f("attributes", "Attributes", T.JSON),
        _CREATED,
        _UPDATED,
    ),
)

VARIANTS = Resource(
    slug="variants",
    label="Product variants",
    table="variants",
    aliases=("product_variants",),
    description="Sellable variants of a product (size, colour).",
    key_fields=("sku",),
    fields=(
        _ID,
        _f("sku", "SKU", required=True, unique=True, aliases=("variant sku",)),
        _f("product", "Product", T.REFERENCE, reference="products", required=True),
        _f("name", "Name", required=True, aliases=("variant name", "option")),
        _f("price", "Price", T.NUMBER),
        _f("stock", "Stock", T.INTEGER, aliases=("inventory", "quantity")),
    ),
)

ANALYTICS = Resource(
    slug="analytics",
    label="Analytics",
    table="events",
    description="Daily aggregates of events. Export only.",
    time_column="date",
    key_fields=("date", "event_type"),
    max_span_days=366,
    importable=False,
    fields=(
        _f("date", "Date", T.DATE, required=True),
        _f("event_type", "Event type", required=True),
        _f("count", "Count", T.INTEGER, required=True),
        _f("unique_contacts", "Unique contacts", T.INTEGER, required=True),
    ),
)

AUDIT_LOG = Resource(
    slug="audit_log",
    label="Audit log",
    table="audit_log",
    description="Who exported or imported what, when. Written by Ferry; export only.",
    time_column="created_at",
    importable=False,
    fields=(
        _ID,
        _f("actor", "Actor", required=True),
        _f("action", "Action", required=True),
        _f("resource", "Resource", required=True),
        _f("run_id", "Run ID"),
        _f("details", "Details", T.JSON),
        _f("payload_bytes", "Payload bytes", T.INTEGER),
        _CREATED,
    ),
)

RESOURCES: dict[str, Resource] = {
    r.slug: r
    for r in (
        CONTACTS,
        ACCOUNTS,
        EVENTS,
        SURVEY_RESPONSES,
        LISTS,
        LIST_MEMBERSHIPS,
        SEGMENTS,
        WORKFLOWS,
        CATALOGS,
        SCHEMAS,
        PRODUCTS,
        VARIANTS,
        ANALYTICS,
        AUDIT_LOG,
    )
}

#: The localized fields of each resource: values that vary per dimension (e.g. language).
LOCALIZED_FIELDS: dict[str, tuple[str, ...]] = {"products": ("name", "description")}


def get_resource(name: str) -> Resource:
    """Find a resource by slug or alias ("profiles" is "contacts")."""
    wanted = name.strip().lower().replace("-", "_")
    for resource in RESOURCES.values():
        if wanted == resource.slug or wanted in resource.aliases:
            return resource
    known = ", ".join(sorted(RESOURCES))
    raise UnknownResourceError(f"Unknown resource {name!r}.", f"Use one of: {known}.")
