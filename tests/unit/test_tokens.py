"""JWT reader/issuer, revocation state and the verified-token cache, in process."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import jwt
import pytest

from tillkey.access.grants import GrantsState
from tillkey.access.tree import ResourceTree
from tillkey.crypto.secrets import MasterSecret
from tillkey.principal import UserType
from tillkey.tokens import key_material, keys
from tillkey.tokens.contracts import InvalidToken, TokenClaims
from tillkey.tokens.issuer import Issuer
from tillkey.tokens.jwt import JwtReader
from tillkey.tokens.revocation import RevocationState, Validator
from tillkey.tokens.service import Authenticator

ISS = "http://tillkey.test"


class FakeClock:
    def __init__(self) -> None:
        # Real time: PyJWT itself refuses an iat further ahead than the leeway.
        self.t = int(time.time())

    def now(self) -> float:
        return float(self.t)

    def now_int(self) -> int:
        return self.t


def _setup(alg: str = "ES256") -> tuple[Issuer, Authenticator, RevocationState, GrantsState, FakeClock]:
    clock = FakeClock()
    master = MasterSecret(b"k" * 32)
    key, _stored = key_material.generate(alg, clock.t, master)
    ring = keys.Keyring([key], alg)
    grants = GrantsState(ResourceTree.load())
    grants.load_admins({1: ("Magento_Catalog::products",)})
    state = RevocationState()
    auth = Authenticator(JwtReader(lambda: ring, ISS), None, Validator(state, clock.now), grants, cache_size=2)
    return Issuer(lambda: ring, ISS, clock.now_int), auth, state, grants, clock


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256", "HS256"])
def test_round_trip_for_every_algorithm(alg: str) -> None:
    issuer, auth, *_ = _setup(alg)

    async def go() -> None:
        token = await issuer.issue(UserType.ADMIN, 1, 60)
        assert jwt.get_unverified_header(token)["alg"] == alg
        p = await auth.authenticate(token)
        assert p.user_type == UserType.ADMIN and p.user_id == 1
        assert "Magento_Catalog::products" in p.resources and not p.all_resources

    asyncio.run(go())


def test_cached_tokens_still_expire_and_get_revoked() -> None:
    issuer, auth, state, _grants, clock = _setup()

    async def go() -> None:
        token = await issuer.issue(UserType.CUSTOMER, 5, 60)
        await auth.authenticate(token)  # now cached
        clock.t += 60
        with pytest.raises(InvalidToken):
            await auth.authenticate(token)
        clock.t -= 60
        await auth.authenticate(token)
        state.note_user(UserType.CUSTOMER, 5, clock.t)
        with pytest.raises(InvalidToken):
            await auth.authenticate(token)
        clock.t += 1
        fresh = await issuer.issue(UserType.CUSTOMER, 5, 60)
        await auth.authenticate(fresh)  # issued after the watermark
        claims = await auth.read(fresh)
        state.note_token(claims.jti, claims.expires_at)
        with pytest.raises(InvalidToken):
            await auth.authenticate(fresh)

    asyncio.run(go())


def test_grant_changes_reach_cached_principals() -> None:
    issuer, auth, _state, grants, _clock = _setup()

    async def go() -> None:
        token = await issuer.issue(UserType.ADMIN, 1, 60)
        assert not (await auth.authenticate(token)).all_resources
        grants.load_admins({1: ("Magento_Backend::all",)})
        assert (await auth.authenticate(token)).all_resources
        grants.load_admins({})  # deactivated: no role
        p = await auth.authenticate(token)
        assert not p.resources and not p.all_resources

    asyncio.run(go())


def test_cache_is_bounded() -> None:
    issuer, auth, *_ = _setup()

    async def go() -> None:
        for uid in range(5):
            await auth.authenticate(await issuer.issue(UserType.CUSTOMER, uid, 60))
        assert len(auth._cache) == 2

    asyncio.run(go())


def test_wrong_issuer_and_missing_claims_are_rejected() -> None:
    _issuer, auth, *_ = _setup("HS256")
    ring_key = next(iter(auth._jwt._keyring().by_kid.values()))  # type: ignore[attr-defined]
    claims = {"uid": 1, "utypid": 2, "iat": 1, "jti": "x", "iss": "http://evil.test"}
    bad_iss = jwt.encode(claims, ring_key.signing_key, "HS256", headers={"kid": ring_key.kid})
    no_jti = jwt.encode(
        {**claims, "iss": ISS, "jti": None} | {}, ring_key.signing_key, "HS256", headers={"kid": ring_key.kid}
    )
    bad_types = jwt.encode(
        {**claims, "iss": ISS, "uid": "one"}, ring_key.signing_key, "HS256", headers={"kid": ring_key.kid}
    )
    for token in (bad_iss, no_jti, bad_types):
        with pytest.raises(InvalidToken):
            asyncio.run(auth.authenticate(token))


def test_revocation_state_never_moves_backwards() -> None:
    state = RevocationState()
    state.note_user(2, 1, 100)
    state.note_user(2, 1, 50)
    assert state.is_revoked(TokenClaims(2, 1, 100, None, "j", "jwt"))
    assert not state.is_revoked(TokenClaims(2, 1, 101, None, "j", "jwt"))


def test_master_secret_encrypts_with_context() -> None:
    m = MasterSecret(b"s" * 40)
    blob = m.encrypt(b"private", "signing-key:a")
    assert m.decrypt(blob, "signing-key:a") == b"private"
    with pytest.raises(Exception):  # noqa: B017 - any authentication failure
        m.decrypt(blob, "signing-key:b")
    assert m.digest("tok") == MasterSecret(b"s" * 40).digest("tok") != MasterSecret(b"t" * 40).digest("tok")
    assert "s" * 10 not in repr(m)


def test_forged_tokens_are_remembered_but_unknown_kids_are_not() -> None:
    issuer, auth, *_ = _setup()

    async def go() -> None:
        good = await issuer.issue(UserType.ADMIN, 1, 60)
        forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
        for _ in range(2):
            with pytest.raises(InvalidToken):
                await auth.authenticate(forged)
        assert forged in auth._rejected
        stranger = jwt.encode({"uid": 1}, "k" * 32, "HS256", headers={"kid": "someone-elses"})
        with pytest.raises(InvalidToken):
            await auth.authenticate(stranger)
        assert stranger not in auth._rejected
        await auth.authenticate(good)

    asyncio.run(go())


def test_key_life_publish_ahead_sign_verify_retire() -> None:
    master = MasterSecret(b"k" * 32)
    old, _ = key_material.generate("ES256", 100, master)
    new, _ = key_material.generate("ES256", 200, master, signs_from=300)
    old = dataclasses.replace(old, retired_at=300, verify_until=400)
    ring = keys.Keyring([old, new], "ES256")
    published = lambda t: {k["kid"] for k in ring.jwks(t)["keys"]}  # noqa: E731
    assert ring.signer(250) is old and published(250) == {old.kid, new.kid}  # new one published ahead
    assert ring.signer(300) is new and ring.verifier(old.kid, 399) is old  # grace: old still verifies
    assert ring.verifier(old.kid, 400) is None and published(400) == {new.kid}  # retired


def test_a_cached_token_is_refused_once_its_key_is_retired() -> None:
    clock = FakeClock()
    key, _ = key_material.generate("ES256", clock.t, MasterSecret(b"k" * 32))
    ring = [keys.Keyring([key], "ES256")]
    grants = GrantsState(ResourceTree.load())
    grants.load_admins({1: ("Magento_Catalog::products",)})
    validator = Validator(RevocationState(), clock.now, lambda: ring[0])
    auth = Authenticator(JwtReader(lambda: ring[0], ISS, clock.now), None, validator, grants, cache_size=2)
    issuer = Issuer(lambda: ring[0], ISS, clock.now_int)

    async def go() -> None:
        token = await issuer.issue(UserType.ADMIN, 1, 3600)
        await auth.authenticate(token)  # verified once, cached from now on
        ring[0] = keys.Keyring([dataclasses.replace(key, verify_until=clock.t + 1)], "ES256")
        await auth.authenticate(token)  # still inside the key's life
        clock.t += 1
        with pytest.raises(InvalidToken):
            await auth.authenticate(token)

    asyncio.run(go())


def test_rotation_grace_outlives_every_signed_token() -> None:
    from tillkey.settings import Settings
    from tillkey.tokens.rotation import default_grace

    assert default_grace(Settings(admin_token_ttl=14400)) == 14400 + 60
    assert default_grace(Settings(admin_token_ttl=600, oauth2_access_token_ttl=86400)) == 86400 + 60
