"""The resource catalog: every resource's fields, declared once.

Export columns, import mapping and validation, the store schema's column
names and the README's resource tables all read this module. A *field* is what
a user thinks of ("phone", "address"); a *column* is one flat cell of it
("phone.mobile", "address.city"). Simple fields have exactly one column whose
key is the field slug.
"""

from __future__ import annotations

from ferry.errors import UnknownResourceError
from ferry.fields import ADDRESS_PARTS, ARROW_TYPES, PHONE_TYPES, Column, Field, FieldType, Resource, arrow_type

__all__ = [  # the building blocks, where every catalog reader already looks for them
    "ADDRESS_PARTS",
    "ARROW_TYPES",
    "PHONE_TYPES",
    "RESOURCES",
    "Column",
    "Field",
    "FieldType",
    "Resource",
    "arrow_type",
    "get_resource",
]


def _f(slug: str, label: str, type_: FieldType = FieldType.TEXT, **kw) -> Field:
    return Field(slug=slug, label=label, type=type_, **kw)


T = FieldType
_ID = _f("id", "Ferry ID", T.INTEGER, readonly=True, unique=True, description="Ferry's own record id.")
_ATTRIBUTES = _f(
    "attributes",
    "Attributes",
    T.JSON,
    custom_attributes=True,
    aliases=("custom attributes", "custom fields", "custom properties"),
    description="Custom properties the catalog has no field for, as a JSON object; "
    "columns import into its keys (`attributes.shoe_size`) and export from them.",
)
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
        _ATTRIBUTES,
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
        _ATTRIBUTES,
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
        _f("properties", "Properties", T.JSON, custom_attributes=True, aliases=("data", "payload")),
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
        _ATTRIBUTES,
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
        _ATTRIBUTES,
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
        _ATTRIBUTES,
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
        _ATTRIBUTES,
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
    fields=(_ID, _f("key", "Key", required=True, unique=True), _f("name", "Name", required=True), _ATTRIBUTES),
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
        _f("attributes", "Attributes", T.JSON, custom_attributes=True),
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
        _ATTRIBUTES,
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
