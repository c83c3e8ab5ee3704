"""Sign-in: one state machine (machine.py) for every surface, its failure budget (budget.py), the
factors it checks (factors.py) and what it issues (issue.py)."""

from tillkey.accounts.signin.factors import (
    EnrolmentCode,
    ExternalAssertion,
    FirstFactor,
    PasskeyAssertion,
    PasskeyEnrolment,
    PasskeySignIn,
    Password,
    SecondFactor,
    Subject,
    TotpCode,
)
from tillkey.accounts.signin.issue import login_token
from tillkey.accounts.signin.machine import (
    NO_ROLE,
    SIGN_IN_FAILED,
    Attempt,
    Issued,
    LoginFailed,
    Pending,
    SecondFactorDue,
    SecondFactorFailed,
    SignedIn,
    SignIn,
    VerificationRequired,
    email_unverified,
)

__all__ = [
    "NO_ROLE",
    "SIGN_IN_FAILED",
    "Attempt",
    "EnrolmentCode",
    "ExternalAssertion",
    "FirstFactor",
    "Issued",
    "LoginFailed",
    "PasskeyAssertion",
    "PasskeyEnrolment",
    "PasskeySignIn",
    "Password",
    "Pending",
    "SecondFactor",
    "SecondFactorDue",
    "SecondFactorFailed",
    "SignIn",
    "SignedIn",
    "Subject",
    "TotpCode",
    "VerificationRequired",
    "email_unverified",
    "login_token",
]
