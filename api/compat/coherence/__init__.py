"""``/compat/coherence``: Coherence's Import & Export API (``shared/seeds/003``) over the native service.

Imports: ``POST /v1/modules/{module}/import/parse`` (multipart ``file``: CSV,
XLSX or XLS, at most 100 MB) answers ``{success, data: {sourceColumns,
sampleRows (up to 50), totalRows, fileType, fileName, encoding, fileId}}``;
``.../import/suggest-mapping``, ``.../import/validate`` and
``.../import/execute`` take the seed's bodies; ``GET .../import/jobs?limit=``
(1-100, default 50), ``GET .../import/jobs/{jobId}``, ``DELETE
.../import/jobs/{jobId}`` (rollback: ``{deletedCount}``). Exports: ``POST
/v1/modules/{module}/export`` and ``POST /v1/reports/{reportId}/export`` (a
saved report, ``ferry reports``) answer the file itself up to 10,000 records,
an export job beyond; ``GET /v1/export-jobs?limit=`` and ``GET
/v1/export-jobs/{exportJobId}``. ``Authorization: Bearer KEY`` (or any native
form). Its errors: 400 ``No file uploaded`` / ``Unsupported file type`` /
``File too large``, 404 ``Module not found`` / ``Import job not found``, 403
``Access denied``.

Where the document is silent, Ferry chose:

* A module is a Ferry resource by slug or alias (``contacts``, ``profiles``,
  ``accounts``, ``events``, ...); anything else is 404 ``Module not found``.
  Field slugs are Ferry's fields in camelCase (``firstName``), ``<x>DateTime``
  for ``<x>_at`` (``createdDateTime``); any other slug goes through the native
  mapping suggestion (``displayName`` -> ``full_name``, ``account`` ->
  ``company``, ``phone`` -> ``phone``, the next free phone type). Answers name
  fields the camelCase way (``fullName``, ``company``). ``valueType`` is a phone
  type (``Mobile``, ``Work``, ``Home``, ``Fax``); ``addressPart`` as the seed's.
* ``parse`` keeps the file as an upload of the key's workspace (the native
  upload store, 7 days) and answers its ``fileId``: later steps take
  ``fileId`` instead of ``rows``. A file's type is its extension (``.csv``,
  ``.xlsx``, ``.xls``); a name without one is named by its MIME type. An
  Excel file's ``encoding`` is null. Inline ``rows`` become an upload too (JSON
  Lines), so error ``row`` numbers are the rows' positions (1 = the first row);
  a file's are its lines as a spreadsheet shows them (1 = the header).
* ``suggest-mapping``: Ferry's rules (names, aliases, values; no model), so
  ``aiUsed`` is false; every source column is listed, unmapped ones with
  ``targetFieldSlug: null`` and their ``reason``. ``targetFields`` also say
  ``required``, and ``valueTypes`` / ``addressParts`` where a field has them.
* ``validate`` runs every check against a throw-away store (native
  ``POST /v1/imports/validate``); ``warnings`` are ``{row: null, field: null,
  message}``. Without ``columnMapping`` the mapping is suggested.
* ``execute``: ``processingMode`` by row count as the seed's table says. ``sync``
  (up to 5,000) runs the import in the API process and answers when it is done
  (200); ``stream`` and ``background`` start a run of ``import-data/default``
  and answer at once (202 + ``Location`` of the job), progress in the job's
  ``processedRows``. ``importJobId`` is the Prefect run id (also
  ``/v1/runs/{id}``); ``createdRecordIds`` are Ferry record ids (sync only);
  ``successRows`` = created + updated.
* Import jobs: ``status`` pending, processing, completed, failed, cancelled
  (rolled back, or a cancelled run); ``accountId`` is the workspace,
  ``moduleId`` the resource; ``expiresDateTime`` is when the job's file is
  removed (``FERRY_UPLOAD_RETENTION_DAYS`` after creation). A list is
  ``{success, data: [job, ...]}``, newest first. Rollback needs an admin key.
* Exports: ``format`` csv or pdf. ``config.columns`` default to the module's
  name, owner and dates (``full_name``/``name``, ``owner``, ``created_at``,
  ``updated_at``, those it has); headers are the catalog's labels unless
  ``columnLabels`` say otherwise; ``includeHeaders`` applies to CSV (a PDF
  table always has its header); ``dateFormat`` takes moment.js tokens
  (``YYYY-MM-DD``, ``L``, ``LL``, ``LLL``) or strftime; ``limit`` 1-100,000.
  At most ``FERRY_API_SYNC_MAX_ROWS`` (10,000) records answer with the file
  (``Content-Disposition: attachment; filename="contacts-export-2024-01-15.csv"``);
  more start an export job: 202 ``{success, data: job}`` + ``Location``. A
  report export takes ``config.title``, ``description``, ``includeHeaders``,
  ``dateFormat`` and ``limit`` (its columns, labels and sort are its own).
* Export jobs are the workspace's export runs but those answered in their
  response: ``{success, jobs: [...]}`` and ``{success, data: job}``;
  ``status`` pending, processing, completed, failed; ``fileUrl`` a fresh signed
  URL (admin keys) until ``expiresDateTime``, 24 hours after completion.
* Roles as natively: import steps, exports and rollback need an admin key;
  reading jobs a viewer key (403 ``Access denied``).
* Errors where the seed is silent: ``{"success": false, "error": {"code":
  STATUS, "message": MESSAGE, "details": [{field, value, reason}]}}`` with
  Ferry's statuses (422 every invalid field at once, named as the body names
  them: ``columnMapping[0].targetFieldSlug``, ``config.columns[1]``; 409 a
  refused rollback; 401, 415, 429); a 403's reason is in ``details``.
"""

from __future__ import annotations

from api.compat.coherence import exports, imports
from api.compat.coherence.common import render, router

__all__ = ["exports", "imports", "render", "router"]
