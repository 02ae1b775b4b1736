"""A local SMTP sink that saves every message it receives as a .eml file, for people to open."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path


class EmlFolderHandler:
    """aiosmtpd handler: one ``<time>-<n>.eml`` file per message, in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.count += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        (self.folder / f"{stamp}-{self.count}.eml").write_bytes(envelope.original_content)
        return "250 Message accepted for delivery"
