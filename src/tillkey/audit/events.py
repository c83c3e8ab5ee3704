"""Audit event names, outcomes and the size rules a record's fields obey."""

from __future__ import annotations

from typing import Any

from tillkey.audit.chain import MARKER_EVENT, canonical
from tillkey.principal import UserType

LOGIN_SUCCESS = "login.success"
LOGIN_FAILURE = "login.failure"  # details.reason: unknown user, wrong password, inactive, …
LOGIN_THROTTLED = "login.throttled"
ACCOUNT_LOCKED = "account.locked"
ACCOUNT_UNLOCKED = "account.unlocked"
TOKEN_ISSUED = "token.issued"  # noqa: S105 (an event name, not a secret)
TOKEN_REVOKED = "token.revoked"  # noqa: S105
TFA_ENROLMENT_STARTED = "tfa.enrolment_started"  # a new secret awaits its first code; details.forced
TFA_ENROLLED = "tfa.enrolled"
TFA_USED = "tfa.used"  # outcome failure for a wrong code
TFA_RESET = "tfa.reset"
ACCESS_DENIED = "access.denied"
ROLE_CREATED = "role.created"
ROLE_CHANGED = "role.changed"
ROLE_DELETED = "role.deleted"
ACCOUNT_CREATED = "account.created"
ACCOUNT_CHANGED = "account.changed"
ACCOUNT_DELETED = "account.deleted"
KEY_ROTATED = "key.rotated"
KEY_RETIRED = "key.retired"
API_KEY_CREATED = "api_key.created"
API_KEY_REVOKED = "api_key.revoked"
API_KEY_DELETED = "api_key.deleted"
API_KEY_CHANGED = "api_key.changed"  # details.change: imported again (details.fields: what the source changed)
API_KEY_REHASHED = "api_key.rehashed"  # an imported Medusa key's first use: now found by keyed digest
API_KEY_REFUSED = "api_key.refused"  # a revoked key, or one whose creator is gone, was presented
SESSION_CREATED = "session.created"
SESSION_ENDED = "session.ended"
PASSWORD_RESET_REQUESTED = "password_reset.requested"  # noqa: S105 (event names)
PASSWORD_RESET_COMPLETED = "password_reset.completed"  # noqa: S105
# An imported (Magento, Medusa) hash replaced by argon2id at sign-in; details.scheme, never the hash.
PASSWORD_REHASHED = "password.rehashed"  # noqa: S105
IMPORT_RUN = "import.run"  # `tillkey import …`: details.source and the run's report
IMPORT_CHECKPOINT = "import.checkpoint"  # one committed batch of an import run: where a crashed run resumes
INTEGRATION_CREATED = "integration.created"
INTEGRATION_ACTIVATED = "integration.activated"  # details.mode: manual, or endpoint (handshake posted)
INTEGRATION_CHANGED = "integration.changed"  # details.change: deactivated, certificate bound/unbound
INTEGRATION_DELETED = "integration.deleted"
OAUTH1_REFUSED = "oauth1.refused"  # a signed request or token exchange refused; details.reason
# OAuth 2: client registration, consent, and the two replay signals RFC 9700 asks to act on.
OAUTH2_CLIENT_CREATED = "oauth2.client.created"
OAUTH2_CLIENT_DELETED = "oauth2.client.deleted"
OAUTH2_CONSENT = "oauth2.consent"  # outcome failure: the user denied
REFRESH_REUSED = "token.refresh_reused"
CODE_REUSED = "oauth2.code_reused"  # an authorization code came back: its tokens revoked
# Federation (issue 14): sign-ins through an external identity provider and what they linked.
LOGIN_EXTERNAL = "login.external"  # outcome failure: refused (details.reason), before any account
IDENTITY_LINKED = "identity.linked"
IDENTITY_PROVISIONED = "identity.provisioned"
IDENTITY_UNLINKED = "identity.unlinked"
IDP_CHANGED = (
    "idp.changed"  # details.change: added, updated, disabled, enabled, removed, saml-metadata, saml-cert-rotated
)
IDP_SYNCED = "idp.synced"  # an LDAP directory's sync: details created/updated/deactivated, or error
# Passkeys (WebAuthn): details.factor "passkey", .id (its row), .aaguid, .name.
PASSKEY_REGISTERED = "passkey.registered"
PASSKEY_RENAMED = "passkey.renamed"
PASSKEY_REMOVED = "passkey.removed"
PASSKEY_USED = "passkey.used"
AUDIT_KEYED = MARKER_EVENT  # the chain continues keyed after legacy records; details.legacy_*

# A typo in an event name would hide records from every search, so unknown names are refused.
EVENTS = frozenset(
    {
        LOGIN_SUCCESS,
        LOGIN_FAILURE,
        LOGIN_THROTTLED,
        ACCOUNT_LOCKED,
        ACCOUNT_UNLOCKED,
        TOKEN_ISSUED,
        TOKEN_REVOKED,
        TFA_ENROLMENT_STARTED,
        TFA_ENROLLED,
        TFA_USED,
        TFA_RESET,
        ACCESS_DENIED,
        ROLE_CREATED,
        ROLE_CHANGED,
        ROLE_DELETED,
        ACCOUNT_CREATED,
        ACCOUNT_CHANGED,
        ACCOUNT_DELETED,
        KEY_ROTATED,
        KEY_RETIRED,
        API_KEY_CREATED,
        API_KEY_REVOKED,
        API_KEY_DELETED,
        API_KEY_REHASHED,
        API_KEY_REFUSED,
        SESSION_CREATED,
        SESSION_ENDED,
        API_KEY_CHANGED,
        PASSWORD_RESET_REQUESTED,
        PASSWORD_RESET_COMPLETED,
        PASSWORD_REHASHED,
        IMPORT_RUN,
        IMPORT_CHECKPOINT,
        INTEGRATION_CREATED,
        INTEGRATION_ACTIVATED,
        INTEGRATION_CHANGED,
        INTEGRATION_DELETED,
        OAUTH1_REFUSED,
        OAUTH2_CLIENT_CREATED,
        OAUTH2_CLIENT_DELETED,
        OAUTH2_CONSENT,
        REFRESH_REUSED,
        CODE_REUSED,
        AUDIT_KEYED,
        LOGIN_EXTERNAL,
        IDENTITY_LINKED,
        IDENTITY_PROVISIONED,
        IDENTITY_UNLINKED,
        IDP_CHANGED,
        IDP_SYNCED,
        PASSKEY_REGISTERED,
        PASSKEY_RENAMED,
        PASSKEY_REMOVED,
        PASSKEY_USED,
    }
)

# Events whose details name what they act on: `target_type` and `target_id` (an account or a
# credential, as a Principal's user type and id) or an OAuth client's `client_id`; by what they
# can act on. A detail page finds the records about its subject among these (AuditLog.concerning);
# a new event that acts on an account or credential names it the same way and is listed here.
_ACCOUNT_EVENTS = frozenset(
    {
        ACCOUNT_CREATED,
        ACCOUNT_CHANGED,
        ACCOUNT_DELETED,
        ACCOUNT_UNLOCKED,
        TFA_RESET,
        TOKEN_REVOKED,
    }
)
CONCERNING_EVENTS: dict[UserType, frozenset[str]] = {
    UserType.ADMIN: _ACCOUNT_EVENTS,
    UserType.CUSTOMER: _ACCOUNT_EVENTS,
    UserType.INTEGRATION: frozenset(
        {
            INTEGRATION_CREATED,
            INTEGRATION_ACTIVATED,
            INTEGRATION_CHANGED,
            INTEGRATION_DELETED,
            TOKEN_REVOKED,
        }
    ),
    UserType.API_KEY: frozenset(
        {
            API_KEY_CREATED,
            API_KEY_REVOKED,
            API_KEY_DELETED,
            API_KEY_REFUSED,
            API_KEY_CHANGED,
        }
    ),
    UserType.OAUTH_CLIENT: frozenset(
        {
            OAUTH2_CLIENT_CREATED,
            OAUTH2_CLIENT_DELETED,
            OAUTH2_CONSENT,
            REFRESH_REUSED,
            TOKEN_REVOKED,
        }
    ),
}

SUCCESS = "success"
FAILURE = "failure"
OUTCOMES = frozenset({SUCCESS, FAILURE})

# Column sizes (store/models.py); longer client-supplied text is cut, not refused.
USERNAME_MAX = 255
IP_MAX = 64
USER_AGENT_MAX = 256
REQUEST_ID_MAX = 128
DETAILS_MAX = 4096  # characters of canonical JSON; longer details are cut by `fit`
DETAILS_VALUE_MAX = 512  # what `fit` leaves of one long value
DETAILS_DEPTH = 4


def fit(details: dict[str, Any], limit: int = DETAILS_MAX) -> dict[str, Any]:
    """Details cut to at most `limit` characters of canonical JSON, by one rule: each value longer
    than DETAILS_VALUE_MAX is cut (text to its start, a list to its first items) and the record
    says so in `truncated` (the original length); if that is not enough, only the keys remain."""
    size = len(canonical(details))
    if size <= limit:
        return details
    out: dict[str, Any] = {}
    for k, v in details.items():
        if len(canonical(v)) <= DETAILS_VALUE_MAX:
            out[k] = v
        elif isinstance(v, str):
            out[k] = v[:DETAILS_VALUE_MAX] + "…"
        elif isinstance(v, list):
            kept: list[Any] = []
            for item in v:
                if len(canonical([*kept, item])) > DETAILS_VALUE_MAX:
                    break
                kept.append(item)
            out[k] = [*kept, f"… {len(v) - len(kept)} more"]
        else:
            out[k] = "…"
    out["truncated"] = size
    if len(canonical(out)) <= limit:
        return out
    keys = sorted(details)
    while keys and len(canonical({"truncated": size, "keys": keys})) > limit:
        keys.pop()
    return {"truncated": size, "keys": keys}


def fitted(details: dict[str, Any], limit: int = DETAILS_MAX) -> str:
    """canonical(fit(details)), encoding details that already fit once instead of twice (every
    audit record goes through this; most fit)."""
    encoded = canonical(details)
    return encoded if len(encoded) <= limit else canonical(fit(details, limit))
