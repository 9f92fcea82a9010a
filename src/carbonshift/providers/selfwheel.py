"""carbonshift's own wheel, built from the installed package, for launched instances to install.

Why: a launched VM that `pip install carbonshift` from the public index runs, as root, whatever is
published under that name (a name anyone could take over, or an index mirror could swap). By default
the daemon serves the very version it runs, and the bootstrap checks the wheel's sha256 before
installing it. The wheel is built from the files of the installed package (so it works for a regular
and an editable install alike), byte for byte the same for the same installation (sorted entries,
fixed timestamps), so every daemon on it announces the same hash.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import io
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from carbonshift import __version__

DIST = "carbonshift"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class OwnWheel:
    path: Path
    sha256: str

    @property
    def filename(self) -> str:
        return self.path.name


def wheel_filename(version: str = __version__) -> str:
    return f"{DIST}-{version.replace('-', '_')}-py3-none-any.whl"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def build_wheel_bytes() -> bytes:
    """The wheel of the installed carbonshift: every file of the package (no caches), and a
    dist-info with the installed METADATA (its dependencies included) and entry points."""
    package_dir = Path(__file__).resolve().parent.parent
    dist = importlib.metadata.distribution(DIST)
    version = dist.version
    info = f"{DIST}-{version.replace('-', '_')}.dist-info"
    files: list[tuple[str, bytes]] = []
    for path in sorted(package_dir.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        files.append((f"{DIST}/{path.relative_to(package_dir).as_posix()}", path.read_bytes()))
    metadata = dist.read_text("METADATA") or f"Metadata-Version: 2.1\nName: {DIST}\nVersion: {version}\n"
    files.append((f"{info}/METADATA", metadata.encode()))
    files.append(
        (
            f"{info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: carbonshift selfwheel\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
    )
    entry_points = dist.read_text("entry_points.txt")
    if entry_points:
        files.append((f"{info}/entry_points.txt", entry_points.encode()))
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files)
    files.append((f"{info}/RECORD", (record + f"{info}/RECORD,,\n").encode()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files:
            entry = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            zf.writestr(entry, data)
    return out.getvalue()


@cache
def own_wheel(directory: Path) -> OwnWheel:
    """Build (once per process) and keep the wheel in `directory`; its path and sha256."""
    data = build_wheel_bytes()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / wheel_filename(importlib.metadata.version(DIST))
    if not path.exists() or path.read_bytes() != data:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return OwnWheel(path, hashlib.sha256(data).hexdigest())
