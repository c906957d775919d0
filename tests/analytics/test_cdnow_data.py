"""The CDNOW files under tests/data/cdnow are the ones their README documents."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path


def test_cdnow_files_match_the_sha256_recorded_in_the_readme(cdnow_dir: Path) -> None:
    readme = (cdnow_dir / "README.md").read_text(encoding="utf-8")
    recorded = dict(
        (name, digest) for digest, name in re.findall(r"^([0-9a-f]{64})\s+(\S+)$", readme, re.M)
    )
    data_files = sorted(p.name for p in cdnow_dir.iterdir() if p.name != "README.md")
    assert sorted(recorded) == data_files
    for name, digest in recorded.items():
        assert hashlib.sha256((cdnow_dir / name).read_bytes()).hexdigest() == digest, name
