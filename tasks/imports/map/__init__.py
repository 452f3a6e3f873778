"""Step 2 of an import: suggest the catalog field each source column goes to.

The suggestion must be deterministic and explainable, because a person accepts it and
a wrong mapping silently corrupts data. So there is no model here, only rules a reader
can follow, each recorded in the mapping's ``reason``:

1. Names. Headers are normalised (accents, camelCase, ``E-mail``, punctuation) and
   compared with each target's slug, label and aliases (the catalog's, plus the vendor
   spellings below). An exact match scores 1.0 (slug/label) or 0.95–0.97 (alias); a match
   after a known prefix ("Mailing", "Default Address", "Card Address") a little less;
   otherwise a token similarity (Dice over words, typo-tolerant) scaled to at most 0.85.
2. Values. The sample rows are profiled (e-mails, phones, URLs, dates, booleans,
   numbers). They veto impossible matches (an ``email`` column whose values are not
   e-mail addresses, a number field full of words) and can map a column on their own:
   a column full of e-mail addresses is the e-mail field whatever its header.
3. Safety rules. Identifier columns ("Record ID", "Customer ID", Stripe's ``id``) go to
   ``external_id`` and never to ``email``; a header with an ``id`` word is penalised for
   any target whose own name has none; negated consent ("Has opted out of email") never
   maps to a consent flag, since it would invert its meaning.
4. Assignment. Best score first, each source column and each target column used once;
   a phone column of no stated type takes the first free phone type (mobile, work, home,
   fax). Anything scoring under :data:`THRESHOLD` stays unmapped rather than guessed.

The stage's Prefect task is :func:`map_columns` (:mod:`.stage`): the plan for one file,
checked against its header before any row is read.

Accepted mappings are remembered per workspace, resource and set of source columns
(table ``import_mappings``) and proposed first, with confidence 1.0, next time.
"""

from ferry.import_params import ColumnMapping
from tasks.imports.map.memory import columns_key, remember_mapping, remembered_mapping, validate_mapping
from tasks.imports.map.names import normalize
from tasks.imports.map.stage import auto_mapping, map_columns, remember_plan, suggest_for_file
from tasks.imports.map.suggest import THRESHOLD, suggest_mapping
from tasks.imports.map.targets import target_fields

__all__ = [
    "THRESHOLD",
    "ColumnMapping",
    "auto_mapping",
    "map_columns",
    "remember_plan",
    "suggest_for_file",
    "columns_key",
    "normalize",
    "remember_mapping",
    "remembered_mapping",
    "suggest_mapping",
    "target_fields",
    "validate_mapping",
]
