"""The official @medusajs/js-sdk (npm, pinned in tests/js/medusa) against a live Tillkey server:
JWT and session mode logins, admin.user.me(), customer register -> create -> refresh ->
store.customer.retrieve(), API key create -> use -> revoke -> refused, logout."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jwt
import pytest

from tests.conftest import ADMIN_PASSWORD, Server, start_server
from tests.js_packages import installed

JS = Path(__file__).parent / "js" / "medusa"
pytestmark = pytest.mark.interop


def _node_modules() -> None:
    installed("medusa", "@medusajs/js-sdk", what="the Medusa SDK test")


def test_medusa_js_sdk_round_trip(fresh_server: Server) -> None:
    _node_modules()
    srv = fresh_server
    srv.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
    env = {
        "PATH": "/usr/bin:/bin:/usr/local/bin",
        "BASE": srv.url,
        "EMAIL": "alice@example.com",
        "PASSWORD": ADMIN_PASSWORD,
        "CUSTOMER_EMAIL": "sdk.buyer@example.com",
        "CUSTOMER_PASSWORD": "Sdk-buyer-pass-1",
    }
    res = subprocess.run(["node", "sdk-flow.mjs"], cwd=JS, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr + srv.log()
    out = json.loads(res.stdout)

    assert out["bad_login"] == {"ok": False, "status": 401, "message": "Invalid email or password"}
    claims = jwt.decode(out["jwt_token"], options={"verify_signature": False})
    assert claims["actor_type"] == "user" and claims["actor_id"] == out["jwt_me"]["id"]
    assert claims["app_metadata"] == {"user_id": claims["actor_id"]}
    assert claims["auth_identity_id"].startswith("authid_") and claims["auth_provider"] == "emailpass"
    assert claims["utypid"] == 2 and claims["iss"] == "http://tillkey.test"  # Tillkey's own claims too
    assert out["jwt_me"]["email"] == "alice@example.com"

    assert out["key_created"]["token_prefix"] == "sk_" and "***" in out["key_created"]["redacted"]
    assert out["key_list"]["ok"] and out["key_list"]["value"] >= 1
    assert out["revoked"] is not None
    assert out["key_after_revoke"] == {"ok": False, "status": 401, "message": "Unauthorized"}
    assert out["me_after_jwt_logout"]["ok"] is False and out["me_after_jwt_logout"]["status"] == 401

    assert out["session_cookie"] is True
    assert {"httponly", "path", "samesite"} <= set(out["cookie_attributes"])
    assert out["session_me"] == {"ok": True, "value": "alice@example.com"}
    assert out["session_cookie_after_logout"] is False
    assert out["session_me_after_logout"]["status"] == 401

    reg = jwt.decode(out["registration_token"], options={"verify_signature": False})
    assert reg["actor_id"] == "" and reg["app_metadata"] == {} and reg["actor_type"] == "customer"
    assert out["me_with_registration_token"] == {"ok": False, "status": 401, "message": "Unauthorized"}
    assert out["customer_created"]["email"] == "sdk.buyer@example.com"
    bound = jwt.decode(out["refreshed_token"], options={"verify_signature": False})
    assert bound["actor_id"] == out["customer_created"]["id"] and bound["utypid"] == 3
    assert out["customer_me"]["id"] == out["customer_created"]["id"]
    assert out["duplicate_register"] == {"ok": False, "status": 401, "message": "Identity with email already exists"}
    assert out["store_without_publishable_key"]["status"] == 400
    assert out["reset"] == {"ok": True}


def test_medusa_js_sdk_mfa(tmp_path: Path) -> None:
    """sdk.auth.mfa.* (js-sdk 2.21): enrol, the login challenge (TOTP for an admin, a recovery code
    for a customer), the pending token refused until it is completed, and disabling."""
    _node_modules()
    srv = start_server(tmp_path / "srv", "sqlite", TILLKEY_ADMIN_2FA="optional")
    try:
        _mfa_flow(srv)
    finally:
        srv.stop()


def _mfa_flow(srv: Server) -> None:
    srv.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
    env = {
        "PATH": "/usr/bin:/bin:/usr/local/bin",
        "BASE": srv.url,
        "EMAIL": "alice@example.com",
        "PASSWORD": ADMIN_PASSWORD,
        "CUSTOMER_EMAIL": "mfa.buyer@example.com",
        "CUSTOMER_PASSWORD": "Mfa-buyer-pass-1",
    }
    res = subprocess.run(["node", "mfa-flow.mjs"], cwd=JS, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr + srv.log()
    out = json.loads(res.stdout)

    assert out["admin_started"] == {"status": "pending", "url": "otpauth://totp/"}
    assert out["admin_verified"] == "enabled" and out["admin_factors"] == [["totp", "enabled"]]
    assert out["admin_recovery_codes"] == 10
    assert out["admin_login"] == {"mfa_required": True, "methods": ["totp", "recovery_code"]}
    assert out["admin_me_pending"]["ok"] is False and out["admin_me_pending"]["status"] == 401
    assert out["admin_wrong_code"] == {"ok": False, "status": 400, "message": "Invalid MFA challenge code"}
    claims = jwt.decode(out["admin_token"], options={"verify_signature": False})
    assert claims["amr"] == ["pwd", "otp"] and claims["mfa_enabled"] is True
    assert claims["mfa_challenge_completed_at"] is not None and claims["actor_type"] == "user"
    assert out["admin_me"] == "alice@example.com"
    assert out["admin_refresh"]["ok"] is True
    assert out["admin_disable"]["ok"] is False and out["admin_disable"]["status"] == 400

    assert out["customer_factors"] == [["totp", "enabled"]]
    assert out["customer_login"] == {"mfa_required": True, "id": "authmfachal_"}
    assert out["customer_retrieve_pending"]["ok"] is False and out["customer_retrieve_pending"]["status"] == 401
    assert out["customer_retrieve_pending"]["message"] == "MFA verification is required to complete this request"
    customer = jwt.decode(out["customer_token"], options={"verify_signature": False})
    assert customer["actor_type"] == "customer" and customer["amr"] == ["pwd", "otp"]
    assert out["customer_email"] == "mfa.buyer@example.com"
    assert out["customer_disable"] == {"ok": True, "value": "disabled"}
    assert out["customer_factors_after"] == 0
    assert out["customer_login_after_disable"] == "string"


def test_medusa_js_sdk_email_verification(tmp_path: Path) -> None:
    """sdk.auth.verification.* (js-sdk 2.21) under TILLKEY_ADMIN_EMAIL_VERIFICATION=required (the
    admin's login, request, confirm, login) and TILLKEY_CUSTOMER_EMAIL_VERIFICATION=required:
    register -> create -> refresh answers verification_required; request mails a code to the
    outbox; confirm spends it once; then login gives a customer token."""
    _node_modules()
    outbox = tmp_path / "outbox.jsonl"
    srv = start_server(
        tmp_path / "srv",
        "sqlite",
        TILLKEY_ADMIN_2FA="optional",
        TILLKEY_CUSTOMER_EMAIL_VERIFICATION="required",
        TILLKEY_ADMIN_EMAIL_VERIFICATION="required",
        TILLKEY_OUTBOX_FILE=str(outbox),
    )
    try:
        srv.cli("admin", "create", "--username", "alice", "--email", "alice@example.com", "--password", ADMIN_PASSWORD)
        env = {
            "PATH": "/usr/bin:/bin:/usr/local/bin",
            "BASE": srv.url,
            "EMAIL": "alice@example.com",
            "PASSWORD": ADMIN_PASSWORD,
            "CUSTOMER_EMAIL": "verified.buyer@example.com",
            "CUSTOMER_PASSWORD": "Verified-buyer-pass-1",
            "OUTBOX": str(outbox),
        }
        res = subprocess.run(
            ["node", "verification-flow.mjs"], cwd=JS, env=env, capture_output=True, text=True, timeout=120
        )
        assert res.returncode == 0, res.stderr + srv.log()
        out = json.loads(res.stdout)
    finally:
        srv.stop()

    # The admin (actor "user") under TILLKEY_ADMIN_EMAIL_VERIFICATION=required, the same way.
    assert out["admin_login"] == {"verification_required": True}
    assert out["admin_me_pending"]["ok"] is False and out["admin_me_pending"]["status"] == 401
    assert out["admin_mail"] == {"kind": "email_verification", "to": "alice@example.com"}
    assert out["admin_confirmed"] == {"entity_id": "alice@example.com", "verified": True}
    assert out["admin_login_after"] == "string" and out["admin_me"] == "alice@example.com"

    email = "verified.buyer@example.com"
    # No code asked for yet: no verification record to show (as Medusa 2.21.2 answers).
    assert out["refresh"] == {"verification_required": True}
    assert out["retrieve_pending"]["ok"] is False and out["retrieve_pending"]["status"] == 401
    assert out["login"] == {"verification_required": True}
    assert out["requested"] == {"entity_id": email, "code_provider": "token"}
    assert out["mail"] == {"kind": "email_verification", "to": email}
    assert out["wrong"] == {"ok": False, "status": 400, "message": "Verification code is invalid or already used"}
    assert out["confirmed"] == {"entity_id": email, "entity_type": "email", "verified": True}
    # Replayed: 401 (the SDK still sends the pending token, revoked by the confirm).
    assert out["replayed"]["ok"] is False and out["replayed"]["status"] == 401
    assert out["login_after"] == "string" and out["customer_email"] == email
