"""The target side of a mapping: the resource and fields a source column can go to, and what vendors call them."""

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
    return [f for f in resource.fields if f.importable]


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


# --- what vendors call each target ----------------------------------------------------------------
#
# The catalog's aliases are what Ferry calls a field; these are what exports from other systems
# call it. They are vocabulary, not header lists: normalised phrases that the name scorer also
# finds after a vendor's prefixes and qualifiers ("Person - ", "Default Address ", "fields.") and
# in plural, abbreviated or glued spellings, so one entry covers many real headers.

# Vendor spellings the catalog's aliases do not cover, by field slug (any resource), weight 0.95.
EXTRA_ALIASES: dict[str, tuple[str, ...]] = {
    "external_id": (
        "external id",
        "klaviyo id",
        "mailchimp id",
        "stripe id",
        "shopify id",
        "profile id",
        "subscriber id",
        "member id",
        "user id",
        "person id",
        "lead id",
        "unique id",
        "uid",
        "uuid",
        "euid",
        "web id",
        "crm id",
        "object id",
        "contact record id",
        "customer number",
    ),
    "email": ("email", "mail address", "primary email", "work email", "business email", "personal email"),
    "first_name": ("given", "forename", "vorname", "prenom"),
    "last_name": ("family", "nachname"),
    "full_name": ("customer name", "your name", "person name"),
    "company": ("account name", "company name", "business name", "organization name", "organisation name", "org"),
    "job_title": ("job title", "designation", "occupation", "job"),
    "lifecycle_stage": ("lifecycle stage", "customer stage", "funnel stage"),
    "email_consent": (
        "accepts email marketing",
        "email marketing",
        "marketing opt in",
        "marketing consent",
        "email subscription",
        "email subscribed",
        "subscribed to email",
        "email opt in status",
        "newsletter",
        "opt in",
        "optin",
        "marketing emails",
    ),
    "sms_consent": ("sms marketing consent", "sms subscribed", "sms opt in status", "accepts sms", "sms marketing"),
    "tags": ("tag",),
    "notes": ("comment", "remarks", "details"),
    "source": ("initial source", "signup source", "utm source", "lead source"),
    "owner": ("hubspot owner", "record owner", "account manager", "sales rep", "owned by"),
    "ip_address": ("ip address", "optin ip", "confirm ip", "signup ip"),
    "timezone": ("time zone",),
    "lifetime_value": (
        "total spend",
        "amount spent",
        "lifetime revenue",
        "customer lifetime value",
        "total customer lifetime value",
        "historic clv",
        "total revenue",
    ),
    "orders_count": ("order count", "orders count"),
}
# The record's own id in an API-shaped export: a bare "id" column beats every "<object> id" (weight 1.0).
STRONG_ALIASES: dict[str, tuple[str, ...]] = {"external_id": ("id",)}
# Slightly weaker spellings (weight 0.85): right for some vendors, ambiguous alone.
WEAK_ALIASES: dict[str, tuple[str, ...]] = {
    "external_id": ("leid",),  # Mailchimp's list-specific id; EUID is the stable one
}
# Phrases that mean the field only verbatim: "Marketing status" is e-mail consent in Pipedrive,
# but HubSpot's "Marketing contact status" (a billing flag) is only one word away (weight 0.95, no fuzzy match).
EXACT_ALIASES: dict[str, tuple[str, ...]] = {"email_consent": ("marketing status", "subscription status", "email status")}
# Catalog aliases that are too ambiguous alone to map on their name: a bare "Status" is a lead status,
# a subscription state or an account state far more often than a lifecycle stage. Weight given instead.
DEMOTED_ALIASES: dict[str, dict[str, float]] = {"lifecycle_stage": {"status": 0.6}}

PHONE_NAMES: dict[str, tuple[str, ...]] = {
    "mobile": (
        "mobile",
        "mobile phone",
        "mobile phone number",
        "mobile number",
        "cell",
        "cell phone",
        "cell number",
        "sms number",
        "sms phone",
        "mobile no",
        "handy",
        "whatsapp",
        "whatsapp number",
    ),
    "work": (
        "work phone",
        "business phone",
        "office phone",
        "work number",
        "direct phone",
        "direct dial",
        "company phone",
        "business number",
        "work phone number",
    ),
    "home": ("home phone", "home number", "private phone", "home phone number"),
    "fax": ("fax", "fax number", "facsimile", "business fax"),
}
# A bare phone type as a column of a contact export (Freshsales' "Work", "Mobile"): weight 0.85.
PHONE_WEAK: dict[str, tuple[str, ...]] = {"work": ("work", "office"), "home": ("home",)}
PHONE_GENERIC = (
    "phone",
    "phone number",
    "telephone",
    "telephone number",
    "contact number",
    "primary phone",
    "phone 1",
    "default phone",
    "tel",
)

ADDRESS_NAMES: dict[str, tuple[str, ...]] = {
    "street": (
        "street",
        "street address",
        "address 1",
        "address line 1",
        "line 1",
        "street 1",
        "street line 1",
        "addr 1",
        "street and number",
    ),
    "street2": ("street 2", "address 2", "address line 2", "line 2", "apartment", "suite", "apt", "unit", "addr 2", "street line 2"),
    "city": ("city", "town", "locality", "city town"),
    "state": ("state", "province", "state region", "state province", "province code", "state code", "state or province", "region code"),
    "zip": ("zip", "zip code", "postal code", "postcode", "post code", "postal", "zip postal code", "plz"),
    "country": ("country", "country code", "country region", "nation", "country name"),
}
# Looser synonyms of a part (weight 0.95 or less): Pipedrive writes both "State/county" and "Region".
ADDRESS_LOOSE: dict[str, tuple[tuple[str, float], ...]] = {"state": (("region", 0.95),), "country": (("cc", 0.85),)}
ADDRESS_GENERIC = ("address", "full address", "location")
