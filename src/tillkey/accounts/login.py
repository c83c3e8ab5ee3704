"""Moved to accounts/signin/ (the sign-in state machine). These names stay importable from here
so code written against the old module keeps working; new code imports tillkey.accounts.signin."""

from tillkey.accounts.signin.machine import NO_ROLE, SIGN_IN_FAILED, Attempt, LoginFailed

__all__ = ["NO_ROLE", "SIGN_IN_FAILED", "Attempt", "LoginFailed"]
