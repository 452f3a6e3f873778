"""Who is calling: an API key (``x-api-key: KEY`` or ``Authorization: Bearer KEY``) and what its role allows.

Every key sees one workspace: the principal's. A key that is missing, malformed,
unknown, revoked or expired is a 401 (with ``WWW-Authenticate``); a role below
what the action needs (``ferry.roles``) is a 403.
"""

from __future__ import annotations

import base64
import binascii

from fastapi import Depends, Request

from ferry.errors import AuthenticationError, PermissionDeniedError
from ferry.keys import Principal, authenticate
from ferry.roles import PERMISSIONS, allows
from ferry.store.engine import get_engine


def presented_key(request: Request) -> str | None:
    """The key the request carries, if any; ``x-api-key`` wins over ``Authorization``.

    ``Authorization`` takes the schemes the products Ferry follows use: ``Bearer KEY``
    (native, Coherence), ``apiKey KEY`` (Connectif) and HTTP Basic with the key as
    the user name and an empty password (Cordial).
    """
    if key := request.headers.get("x-api-key"):
        return key.strip()
    scheme, _, credentials = (request.headers.get("authorization") or "").partition(" ")
    credentials, scheme = credentials.strip(), scheme.lower()
    if scheme == "basic" and credentials:
        try:
            user, _, _password = base64.b64decode(credentials, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user.strip() or None
    return credentials if scheme in ("bearer", "apikey") and credentials else None


def principal(request: Request) -> Principal:
    """The authenticated caller; 401 when there is no valid key."""
    key = presented_key(request)
    if not key:
        raise AuthenticationError("This endpoint needs an API key.", "Send it as `x-api-key: KEY` or `Authorization: Bearer KEY`.")
    found = authenticate(get_engine(), key)
    if found is None:
        raise AuthenticationError("The API key is not valid: unknown, revoked or expired.", "Create a key with `ferry keys create`.")
    request.state.principal = found
    return found


def require(action: str):
    """A dependency: the caller, if its role may do ``action`` (``ferry.roles.PERMISSIONS``); 403 otherwise."""
    needed = PERMISSIONS[action]

    def check(caller: Principal = Depends(principal)) -> Principal:
        if not allows(caller.role, action):
            raise PermissionDeniedError(f"A {caller.role} key may not do this ({action} needs {needed}).", "Use a key with that role.")
        return caller

    return Depends(check)
