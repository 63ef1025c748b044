"""A manifest (file sizes and sha256) for a shipped checkpoint folder, so a test can prove the files are the ones
that were measured."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path


def write_manifest(folder: str | Path, command: str, extra: dict | None = None) -> Path:
    folder = Path(folder)
    files = {
        path.name: {"bytes": path.stat().st_size, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name != "MANIFEST.json"
    }
    manifest = folder / "MANIFEST.json"
    manifest.write_text(json.dumps({"command": command, "files": files, **(extra or {})}, indent=2) + "\n")
    return manifest
