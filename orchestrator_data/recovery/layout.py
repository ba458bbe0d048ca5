"""Where the physical chain lives under RECOVERY_DIR, and the names of WAL segment files."""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from orchestrator_data.recovery.errors import RecoveryError

SEGMENT_NAME = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")
HISTORY_NAME = re.compile(r"^([0-9A-F]{8})\.history$")
ENCRYPTED_SUFFIX = ".enc"
PARTIAL_SUFFIX = ".partial"


@dataclass(frozen=True)
class Layout:
    root: Path

    @classmethod
    def from_settings(cls, settings) -> Layout:
        return cls(Path(settings.recovery_root).expanduser().absolute())

    @property
    def wal(self) -> Path:
        return self.root / "wal"

    @property
    def base(self) -> Path:
        return self.root / "base"

    @property
    def restore_points(self) -> Path:
        return self.root / "restore_points.jsonl"

    @property
    def archive_info(self) -> Path:
        return self.root / "archive.json"

    def ensure(self) -> None:
        for path in (self.root, self.wal, self.base):
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o700)

    def scratch(self, purpose: str) -> Path:
        """A private temporary directory under the root (same file system: renames stay atomic)."""
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".tmp-{purpose}-", dir=self.root))

    def read_archive_info(self) -> dict | None:
        try:
            return json.loads(self.archive_info.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            raise RecoveryError(f"{self.archive_info} is not valid JSON") from None


def lsn_to_int(text: str) -> int:
    high, _, low = text.partition("/")
    if not _ or not high or not low:
        raise ValueError(f"not an LSN: {text!r}")
    return (int(high, 16) << 32) | int(low, 16)


def int_to_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def segments_per_id(segment_size: int) -> int:
    return 0x100000000 // segment_size


def segment_name(timeline: int, segno: int, segment_size: int) -> str:
    per = segments_per_id(segment_size)
    return f"{timeline:08X}{segno // per:08X}{segno % per:08X}"


def parse_segment_name(name: str, segment_size: int) -> tuple[int, int] | None:
    """(timeline, segment number) of a WAL segment file name, or None."""
    match = SEGMENT_NAME.match(name)
    if not match:
        return None
    timeline, high, low = (int(part, 16) for part in match.groups())
    return timeline, high * segments_per_id(segment_size) + low


def segment_of(lsn: int, segment_size: int) -> int:
    return lsn // segment_size


def new_id(now: datetime | None = None) -> str:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"

