"""The sign-in state machine itself (accounts/signin/): its order, its seams, and that it is the
one caller of the login flood controls."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests import inprocess
from tillkey.accounts.signin import Attempt, Issued, LoginFailed, SignedIn, Subject
from tillkey.accounts.signin.factors import Account, FactorParts, find_account
from tillkey.errors import RateLimited
from tillkey.principal import UserType

SRC = Path(__file__).resolve().parents[2] / "src" / "tillkey"
WHERE = Attempt("198.51.100.7", "test")


@dataclass(frozen=True, slots=True)
class Assertion:
    """A stand-in for a first factor yet to come (an external IdP's assertion, an LDAP bind):
    it plugs in as a step object and gets every other step for free."""

    valid: bool
    amr: ClassVar[str] = "fed"
    wrong: ClassVar[str] = "invalid assertion"
    checked: ClassVar[list[str]] = []

    async def locate(self, db: AsyncSession, subject: Subject) -> Account | None:
        return await find_account(db, subject)

    async def verify(self, parts: FactorParts, subject: Subject, account: Account | None) -> bool:
        self.checked.append(subject.name)
        return self.valid and account is not None

    async def passed(self, parts: FactorParts, account: Account) -> None:
        return None


async def _who(signed_in: SignedIn) -> tuple[int, tuple[str, ...]]:
    return signed_in.user_id, signed_in.amr


def test_a_new_first_factor_gets_the_budget_the_audit_and_the_issue_step(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, admin_2fa="off", login_throttle_max_failures=3) as t:
            alice = await t.create_admin("alice")
            signin, subject = t.tk.services.sign_in, Subject(UserType.ADMIN, "alice")
            outcome = await signin.begin(subject, Assertion(True), WHERE, _who)
            assert isinstance(outcome, Issued) and outcome.credential == (alice.id, ("fed",))
            for _ in range(3):
                with pytest.raises(LoginFailed):
                    await signin.begin(subject, Assertion(False), WHERE, _who)
            Assertion.checked.clear()
            with pytest.raises(LoginFailed) as refused:
                await signin.begin(subject, Assertion(True), WHERE, _who)
            # Throttled before the factor was even asked: the same order for every factor.
            assert refused.value.reason == "throttled" and Assertion.checked == []

    inprocess.run(body)


def test_rate_limits_come_before_any_work(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path, rate_limit_login_username="2/hour") as t:
            await t.create_admin("alice")
            signin, subject = t.tk.services.sign_in, Subject(UserType.ADMIN, "alice")
            Assertion.checked.clear()
            for _ in range(2):
                with pytest.raises(LoginFailed):
                    await signin.begin(subject, Assertion(False), WHERE, _who)
            with pytest.raises(RateLimited):
                await signin.begin(subject, Assertion(True), WHERE, _who)
            assert len(Assertion.checked) == 2

    inprocess.run(body)


# The login flood controls have one caller, the state machine's budget (accounts/signin/budget.py);
# runtime.py builds them (wiring.py hands them to the budget); the pacer also paces the general rate limit's refusals.
_ONE_CALLER = {
    r"store import throttle|store\.throttle": {"accounts/signin/budget.py"},
    r"login_admission": {"accounts/signin/budget.py", "runtime.py", "wiring.py"},
    r"\.pacer\b|pacer=": {"accounts/signin/budget.py", "runtime.py", "wiring.py", "app.py", "web/edge.py"},
    r"login_username_limit": {"accounts/signin/budget.py", "runtime.py", "accounts/medusa_auth.py"},
}


@pytest.mark.parametrize("pattern", sorted(_ONE_CALLER))
def test_surfaces_do_not_sequence_sign_in_themselves(pattern: str) -> None:
    users = {
        str(path.relative_to(SRC)) for path in SRC.rglob("*.py") if re.search(pattern, path.read_text(encoding="utf-8"))
    }
    assert users <= _ONE_CALLER[pattern], users
