"""Roles of API keys and the one table of what each may do.

Three roles, each including the one below it: ``admin`` ⊃ ``operator`` ⊃
``viewer``. Rather than a matrix of role x action (which can drift into a role
that may do something a higher one may not), each action names the *least*
role allowed to do it; the hierarchy then holds by construction, and the
README's matrix is rendered from this same table (:func:`role_matrix_markdown`).

Actions are ``<thing>.<verb>`` strings the HTTP API checks with :func:`allows`.
An action missing from the table is refused for every role: a new endpoint is
closed until someone decides who may call it.
"""

from __future__ import annotations

from typing import Literal, get_args

Role = Literal["viewer", "operator", "admin"]

#: The roles, lowest first; a role may do everything the roles before it may.
ROLES: tuple[Role, ...] = get_args(Role)

_RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLES)}

#: action -> the least role that may do it.
PERMISSIONS: dict[str, Role] = {
    # admin: actions that move customer data in or out, undo imports, or hand out access
    "exports.create": "admin",
    "imports.create": "admin",
    "runs.rollback": "admin",
    "runs.download": "admin",
    "keys.manage": "admin",
    "audit.read": "admin",
    # operator: run and shape the scheduled jobs admins set up
    "export_jobs.write": "operator",
    "export_jobs.run": "operator",
    "reports.write": "operator",
    # viewer: see what exists and how it went, never the data itself
    "export_jobs.read": "viewer",
    "reports.read": "viewer",
    "runs.read": "viewer",
}

#: What each action means, for the README's matrix.
DESCRIPTIONS: dict[str, str] = {
    "exports.create": "run an ad-hoc export",
    "imports.create": "import a file",
    "runs.rollback": "roll an import back",
    "runs.download": "get a download URL of an export's file",
    "keys.manage": "create, list, revoke and rotate API keys",
    "audit.read": "read the audit log",
    "export_jobs.write": "create, update, pause, resume and delete export jobs",
    "export_jobs.run": "start a job's run now",
    "export_jobs.read": "list and show export jobs",
    "reports.write": "create, replace and delete saved reports",
    "reports.read": "list and show saved reports",
    "runs.read": "list runs and read their records",
}


def is_role(value: str) -> bool:
    return value in _RANK


def allows(role: str, action: str) -> bool:
    """Whether a key of ``role`` may do ``action``; False for an unknown role or an action not in the table."""
    needed = PERMISSIONS.get(action)
    if needed is None or role not in _RANK:
        return False
    return _RANK[role] >= _RANK[needed]


def role_matrix_markdown() -> str:
    """The permission table as a markdown table (one row per action, one column per role), as the README shows it."""
    lines = ["| action | what it allows | " + " | ".join(ROLES) + " |", "|---|---|" + "---|" * len(ROLES)]
    for action in sorted(PERMISSIONS, key=lambda a: (-_RANK[PERMISSIONS[a]], a)):
        marks = " | ".join("✓" if allows(role, action) else "–" for role in ROLES)
        lines.append(f"| `{action}` | {DESCRIPTIONS.get(action, '')} | {marks} |")
    return "\n".join(lines) + "\n"
