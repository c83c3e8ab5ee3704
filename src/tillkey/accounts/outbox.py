"""Messages Tillkey would e-mail, handed to the operator's mailer as JSON lines (TILLKEY_OUTBOX_FILE).

The file holds secrets meant for their recipients (password reset tokens), so it is created 0600
and only appended to; nothing of it ever reaches the log.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from tillkey import jsonlines

log = logging.getLogger("tillkey")


class Outbox:
    def __init__(self, path: Path | None) -> None:
        self.path = path

    def send(self, message: dict[str, Any]) -> bool:
        if self.path is None:
            log.warning("a %s message was dropped: no TILLKEY_OUTBOX_FILE is configured", message.get("kind"))
            return False
        line = (json.dumps(message, separators=(",", ":"), sort_keys=True) + "\n").encode()
        jsonlines.append(self.path, line)
        return True
