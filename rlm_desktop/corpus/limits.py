"""Per-file limits that keep a hostile or broken file from stalling or exhausting the machine."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds applied to every file; the defaults suit a laptop with 8 GB of memory."""

    #: Largest file read at all. Mailboxes and logs are streamed, so this can be large.
    max_file_bytes: int = 8 * GiB
    #: Largest file parsed in one piece (PDF, Word, a single email, an archive).
    max_parsed_bytes: int = 512 * MiB
    #: Most decompressed bytes taken from one archive member or compressed log.
    max_decompressed_bytes: int = 2 * GiB
    #: Largest compression ratio accepted once the output passes `ratio_floor_bytes`.
    max_compression_ratio: float = 200.0
    ratio_floor_bytes: int = 16 * MiB
    #: Wall-clock seconds per file: `seconds_per_file` plus `seconds_per_mib` of its size.
    seconds_per_file: float = 120.0
    seconds_per_mib: float = 0.5
    #: Address-space limit of each parser process (enforced where the OS supports it).
    worker_memory_bytes: int = 4 * GiB
    #: Archive members and email attachments nested inside one another.
    max_nesting: int = 4
    #: MIME parts nested inside one another in one message.
    max_mime_depth: int = 16
    #: Entries read from one zip archive.
    max_archive_members: int = 10_000

    def seconds_for(self, size: int) -> float:
        return self.seconds_per_file + self.seconds_per_mib * size / MiB

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Limits:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
