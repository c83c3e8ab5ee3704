"""Signed anchors of the audit chain's head, kept outside the database.

The keyed chain (tillkey.audit) stops anyone without the master secret from rewriting
records; it cannot stop them from cutting the newest records off and moving the head row back,
because what remains is still a valid chain. An anchor is a line `{"seq", "hash", "time_ms",
"mac"}` appended to a file (TILLKEY_AUDIT_ANCHOR_FILE): "record `seq` had hash `hash` at that
time". `tillkey audit verify` then requires every anchored record to exist with that hash, so a
cut tail or a chain rebuilt from some record on is named.

Why an HMAC under a key derived from the master secret, not the JWT signing keyring: the keyring's
private keys live in the database (encrypted under the master secret), they rotate and retire (an
old anchor would need a retired key to check), and the only verifier is Tillkey itself, which
holds the master secret. Someone holding the database but not the master secret cannot forge a
line; someone who can also write this file still cannot forge one without the secret, only delete
lines (ship the file to append-only storage to rule that out too).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from tillkey import jsonlines

log = logging.getLogger("tillkey.audit")

ANCHOR_KEY_PURPOSE = "tillkey/audit-anchor"


@dataclass(frozen=True, slots=True)
class Anchor:
    seq: int
    hash: str
    time_ms: int
    line: int  # 1-based line number in the file, for messages


class AnchorError(ValueError):
    """A line of the anchor file is malformed or its signature does not match."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"anchor file line {line}: {reason}")
        self.line = line


def _canonical(seq: int, hash_: str, time_ms: int) -> bytes:
    return json.dumps({"hash": hash_, "seq": seq, "time_ms": time_ms}, sort_keys=True, separators=(",", ":")).encode()


class AnchorFile:
    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self._key = key

    def _mac(self, seq: int, hash_: str, time_ms: int) -> str:
        return hmac.new(self._key, _canonical(seq, hash_, time_ms), hashlib.sha256).hexdigest()

    def write(self, seq: int, hash_: str, time_ms: int) -> None:
        """Append one signed line. A failure is logged, never raised: the records are committed."""
        line = json.dumps(
            {"seq": seq, "hash": hash_, "time_ms": time_ms, "mac": self._mac(seq, hash_, time_ms)},
            separators=(",", ":"),
        )
        data = (line + "\n").encode("ascii")
        try:
            jsonlines.append(self.path, data)
        except OSError:
            log.exception("audit anchor file %s: write failed", self.path)

    def read(self) -> list[Anchor]:
        """Every anchor in the file, checked; AnchorError names the first bad line. A missing file
        is no anchors (a fresh install, or anchoring switched off until now)."""
        try:
            text = self.path.read_text("ascii")
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            raise AnchorError(0, f"unreadable ({exc})") from exc
        anchors = []
        for n, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
                seq, hash_, time_ms, mac = obj["seq"], obj["hash"], obj["time_ms"], obj["mac"]
                if not (isinstance(seq, int) and isinstance(hash_, str) and isinstance(time_ms, int)):
                    raise TypeError
                if not isinstance(mac, str):
                    raise TypeError
            except (ValueError, KeyError, TypeError) as exc:
                raise AnchorError(n, "not an anchor line (the file was edited)") from exc
            if not hmac.compare_digest(mac.encode(), self._mac(seq, hash_, time_ms).encode()):
                raise AnchorError(n, "its signature does not match (forged or edited without the key)")
            anchors.append(Anchor(seq, hash_, time_ms, n))
        return anchors
