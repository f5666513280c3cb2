"""What an index run did, file by file and in counts: the CLI's summary and `--json`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class IndexSummary:
    found: int = 0  # files considered: indexed, unchanged or skipped (not hidden, .gitignored or excluded)
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    excluded: int = 0  # files and folders a folder walk left out for --include/--exclude
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    documents: int = 0
    chunks: int = 0
    seconds: float = 0.0

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.seconds if self.seconds else 0.0

    def skipped_by_reason(self) -> dict[str, list[str]]:
        """Skipped paths per reason, commonest reason first: hundreds of files skipped for one
        reason read as one line, not hundreds."""
        groups: dict[str, list[str]] = {}
        for path, reason in self.skipped:
            groups.setdefault(reason, []).append(path)
        return dict(sorted(groups.items(), key=lambda item: -len(item[1])))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["skipped"] = [{"path": p, "reason": r} for p, r in self.skipped]
        d["skipped_by_reason"] = {reason: len(paths) for reason, paths in self.skipped_by_reason().items()}
        d["chunks_per_second"] = round(self.chunks_per_second, 2)
        d["seconds"] = round(self.seconds, 2)
        return d
