"""TSB-AD's data: `dataset=tsb_ad_u` (univariate, TSB-AD-U) and `dataset=tsb_ad_m` (multivariate, TSB-AD-M), their
settings and their files (run under the TSB-AD protocol, tsad/protocols/tsb_ad.py).

Files are read as TSB-AD distributes them: `<NNN>_<source>_id_<k>_<domain>_tr_<train end>_1st_<first anomaly>.csv`,
the value columns then `Label` (0/1), rows with an empty cell dropped (TSB-AD's `dropna`). The name's `tr` ends the
training part (rows [0, tr)) and its `1st` must be the first row labelled 1; both are checked against the file.

Selection: `list` names one of TSB-AD's file lists (shipped in tsad/data/tsb_ad_lists/, Apache-2.0, so that a
partial folder still selects by list; null: every file in the folder), then `sources` and `files` narrow it. Listed
files missing from the folder are one warning with their count; the run goes on with the files that are there.

The folder is `dataset.root`, else $TSAD_DATA_DIR/TSB-AD-U (or -M), else the per-user cache. When that folder holds
no TSB-AD file, TSB-AD's archive is downloaded from the URL its README gives, checked (the zip opens and tests clean,
every file of the benchmark's full list is in it and reads as a valid TSB-AD file) and only then moved into place.
The archive's sha256 is not pinned: it could not be measured where this was written, so a changed archive that still
passes those checks is accepted.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from tsad.data.locate import ENVIRONMENT_VARIABLE, cache_dir, fetch
from tsad.data.registry import DatasetSettings, register_dataset
from tsad.errors import UserError
from tsad.run_warnings import RunWarnings
from tsad.settings.fields import setting

log = logging.getLogger(__name__)

ARCHIVE_URL = "https://www.thedatum.org/datasets/TSB-AD-{benchmark}.zip"
LISTS_DIR = Path(__file__).with_name("tsb_ad_lists")
LABEL_COLUMN = "Label"
FILE_NAME = re.compile(r"(?P<number>\d+)_(?P<source>.+?)_id_(?P<id>\d+)_(?P<domain>.+)_tr_(?P<train_end>\d+)"
                       r"_1st_(?P<first_anomaly>\d+)\.csv")
TRAIN_MODES = ("semi_supervised", "unsupervised")


@dataclass(frozen=True)
class TSBName:
    """What a TSB-AD file name says."""

    file: str  # the name with .csv
    source: str  # NAB, YAHOO, SMD, ...
    train_end: int  # tr: rows [0, train_end) are the training part
    first_anomaly: int  # 1st: the first row labelled 1


def parse_name(file: str) -> TSBName:
    match = FILE_NAME.fullmatch(file)
    if match is None:
        raise UserError(f"{file}: not a TSB-AD file name; TSB-AD names files "
                        f"<NNN>_<source>_id_<k>_<domain>_tr_<train end>_1st_<first anomaly>.csv")
    return TSBName(file, match["source"], int(match["train_end"]), int(match["first_anomaly"]))


@dataclass
class TSBFile:
    """One TSB-AD series, rows after TSB-AD's dropna."""

    name: TSBName
    values: np.ndarray  # [T, C] float64
    labels: np.ndarray  # [T] int64, 0/1
    columns: list[str]

    @property
    def file(self) -> str:
        return self.name.file

    @property
    def source(self) -> str:
        return self.name.source


@dataclass
class TSBCorpus:
    """The selected files of a TSB-AD folder, and what selecting them said."""

    folder: Path
    files: list[TSBFile]
    warnings: RunWarnings = field(default_factory=RunWarnings)


@dataclass(frozen=True)
class TSBADSettings(DatasetSettings):
    """Which TSB-AD files a run reads and how the TSB-AD protocol fits on them (one subclass per benchmark)."""

    benchmark: ClassVar[str] = "U"
    level: str = setting("point", choices=("point",))
    protocol: str = setting("tsb_ad", choices=("tsb_ad",))  # a fresh detector per file, every row scored
    root: str | None = None  # the folder of TSB-AD files; null: $TSAD_DATA_DIR/TSB-AD-<U|M>, else the cache
    list: str | None = None  # a TSB-AD file list (tsad/data/tsb_ad_lists/); null: every file in the folder
    sources: str | tuple[str, ...] | None = None  # keep these sources (e.g. [NAB, YAHOO]); null: every source
    files: str | tuple[str, ...] | None = None  # keep these file names; null: every selected file
    train: str = setting("semi_supervised", choices=TRAIN_MODES)  # fit on rows [0, tr) | on the whole series
    workers: int | None = setting(None, at_least=1)  # files run at once; null: the run's share of the cores
    # a window model's window per file: this multiple of the file's sliding window (TSB-AD's Sub-* methods use the
    # period); null: model.window for every file
    window_from_period: float | None = setting(None, above=0)

    @property
    def folder_name(self) -> str:
        return f"TSB-AD-{self.benchmark}"

    def check(self) -> None:
        if self.list is not None and self.list not in list_names(self.benchmark):
            raise UserError(f"dataset.list={self.list} is not a TSB-AD-{self.benchmark} file list; choose from "
                            f"{', '.join(list_names(self.benchmark))}, or null for every file in the folder")
        for key in ("sources", "files"):
            if getattr(self, key) is not None and not as_list(getattr(self, key)):
                raise UserError(f"dataset.{key} is an empty list; name some or set it to null")
        if self.files is not None:
            for file in csv_names(self.files):
                parse_name(file)

    def load(self) -> TSBCorpus:
        """The selected files, read and checked, in list (or name) order."""
        folder = self.locate()
        warnings = RunWarnings()
        names = select(self.candidates(folder), self.sources, self.files)
        present = [name for name in names if (folder / name.file).is_file()]
        if not present:
            raise UserError(f"{folder} holds none of the {len(names)} selected TSB-AD-{self.benchmark} files (e.g. "
                            f"{names[0].file}); point dataset.root at TSB-AD's {self.folder_name} folder")
        if len(present) < len(names):
            warnings.add("missing_files", f"{folder} lacks {len(names) - len(present)} of the {len(names)} selected "
                                          f"files; running the {len(present)} that are there")
        return TSBCorpus(folder, [read_tsb_file(folder / name.file, name) for name in present], warnings)

    def candidates(self, folder: Path) -> list[TSBName]:
        if self.list is not None:
            return [parse_name(file) for file in list_files(self.list)]
        return [parse_name(path.name) for path in sorted(folder.glob("*.csv"))]

    def locate(self) -> Path:
        if self.root:
            folder = Path(self.root).expanduser()
            if not folder.is_dir():
                raise UserError(f"dataset.root={folder} is not a folder; point it at TSB-AD's {self.folder_name} "
                                f"folder of CSV files")
            return folder
        environment = os.environ.get(ENVIRONMENT_VARIABLE)
        folder = (Path(environment).expanduser() if environment else cache_dir()) / self.folder_name
        if not any(folder.glob("*.csv")):
            download_archive(self.benchmark, folder)
        return folder


@register_dataset("tsb_ad_u")
@dataclass(frozen=True)
class TSBADUSettings(TSBADSettings):
    benchmark: ClassVar[str] = "U"
    family: str = "tsb_ad_u"
    name: str = "tsb_ad_u"
    list: str | None = "TSB-AD-U-Eva"


@register_dataset("tsb_ad_m")
@dataclass(frozen=True)
class TSBADMSettings(TSBADSettings):
    benchmark: ClassVar[str] = "M"
    family: str = "tsb_ad_m"
    name: str = "tsb_ad_m"
    list: str | None = "TSB-AD-M-Eva"


# -- selecting ------------------------------------------------------------------------------------

def list_names(benchmark: str) -> list[str]:
    prefix = f"TSB-AD-{benchmark}"
    return sorted(path.stem for path in LISTS_DIR.glob("*.csv") if path.stem.split("-")[:3] == prefix.split("-"))


def list_files(list_name: str) -> list[str]:
    return pd.read_csv(LISTS_DIR / f"{list_name}.csv")["file_name"].tolist()


def as_list(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def csv_names(files) -> list[str]:
    return [file if file.endswith(".csv") else f"{file}.csv" for file in as_list(files)]


def select(candidates: list[TSBName], sources, files) -> list[TSBName]:
    """The candidates of the given sources, then the named files among them (in the candidates' order)."""
    if not candidates:
        raise UserError("no TSB-AD files to choose from: the folder holds no CSV file and dataset.list is null")
    chosen = candidates
    if sources is not None:
        known = sorted({name.source for name in candidates})
        unknown = [source for source in as_list(sources) if source not in known]
        if unknown:
            raise UserError(f"dataset.sources: {unknown[0]} is not a source of the selected files; choose from "
                            f"{', '.join(known)}")
        chosen = [name for name in chosen if name.source in as_list(sources)]
    if files is not None:
        wanted = csv_names(files)
        by_file = {name.file: name for name in chosen}
        unknown = [file for file in wanted if file not in by_file]
        if unknown:
            raise UserError(f"dataset.files: {unknown[0]} is not among the selected files (dataset.list and "
                            f"dataset.sources); name a file of them, e.g. {chosen[0].file}")
        chosen = [by_file[file] for file in dict.fromkeys(wanted)]
    return chosen


# -- reading ----------------------------------------------------------------------------------------

def read_tsb_file(path: Path, name: TSBName | None = None) -> TSBFile:
    """One TSB-AD file: values [T, C] and labels [T] after dropping rows with an empty cell, checked against its
    name's tr and 1st."""
    name = name or parse_name(path.name)
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as error:
        raise UserError(f"{path}: cannot read it as CSV ({type(error).__name__}); restore it from TSB-AD") from None
    columns = [str(column) for column in frame.columns]
    if len(columns) < 2 or columns[-1] != LABEL_COLUMN:
        raise UserError(f"{path}: TSB-AD files hold the value columns then {LABEL_COLUMN}, got columns "
                        f"{','.join(columns)}; restore it from TSB-AD")
    for column in columns:
        numbers = pd.to_numeric(frame[column], errors="coerce")
        bad = numbers.isna() & frame[column].notna()
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            raise UserError(f"{path}: line {row + 2}, column {column}: {frame[column].iloc[row]!r} is not a number")
        frame[column] = numbers
    frame = frame.dropna()
    values = frame.iloc[:, :-1].to_numpy(dtype=np.float64)
    labels = frame[LABEL_COLUMN].to_numpy()
    if not np.isfinite(values).all():
        raise UserError(f"{path}: holds an infinite value; TSB-AD files hold finite numbers")
    if not np.isin(labels, (0, 1)).all():
        raise UserError(f"{path}: {LABEL_COLUMN} holds {labels[~np.isin(labels, (0, 1))][0]:g}; it must be 0 or 1")
    labels = labels.astype(np.int64)
    check_name_against_rows(path, name, labels)
    return TSBFile(name, values, labels, columns[:-1])


def check_name_against_rows(path: Path, name: TSBName, labels: np.ndarray) -> None:
    if not labels.any():
        raise UserError(f"{path}: no row is labelled 1, but its name says the first anomaly is row "
                        f"{name.first_anomaly}")
    first = int(np.argmax(labels))
    if first != name.first_anomaly:
        raise UserError(f"{path}: its first row labelled 1 is row {first}, but its name says 1st_{name.first_anomaly}"
                        f"; the file or its name was changed, restore it from TSB-AD")
    if not 1 <= name.train_end < len(labels):
        raise UserError(f"{path}: its name's tr_{name.train_end} does not end a training part inside its "
                        f"{len(labels)} rows; restore it from TSB-AD")


# -- downloading ----------------------------------------------------------------------------------

def download_archive(benchmark: str, folder: Path) -> None:
    """TSB-AD-<benchmark>.zip into `folder`: downloaded, tested and every file of the full list read before any
    file is moved into place (no checksum is known; see the module docstring)."""
    url = ARCHIVE_URL.format(benchmark=benchmark)
    everything = [parse_name(file) for file in list_files(f"TSB-AD-{benchmark}")]
    log.info("TSB-AD-%s: downloading %s into %s (about 1-2 GB; its checksum is not pinned)", benchmark, url, folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as scratch:
            archive = Path(scratch) / "archive.zip"
            fetch(url, archive)
            extracted = Path(scratch) / "files"
            extract_csv_files(archive, extracted, url)
            missing = [name.file for name in everything if not (extracted / name.file).is_file()]
            if missing:
                raise UserError(f"{url} lacks {len(missing)} of TSB-AD-{benchmark}'s {len(everything)} files "
                                f"(e.g. {missing[0]}); the archive changed, put the files in a folder and set "
                                f"dataset.root=FOLDER")
            for name in everything:
                read_tsb_file(extracted / name.file, name)
            for path in extracted.iterdir():
                os.replace(path, folder / path.name)
    except UserError:
        raise
    except (OSError, zipfile.BadZipFile) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"TSB-AD-{benchmark}: cannot download {url} into {folder} ({reason}); without network, "
                        f"unzip TSB-AD-{benchmark}.zip into a folder and set dataset.root=FOLDER") from None


def extract_csv_files(archive: Path, destination: Path, url: str) -> None:
    """Every .csv member of the archive into `destination`, flat (the archive's folders dropped)."""
    destination.mkdir()
    with zipfile.ZipFile(archive) as bundle:
        broken = bundle.testzip()
        if broken is not None:
            raise UserError(f"{url}: the archive's member {broken} is damaged; download again or set dataset.root")
        for member in bundle.infolist():
            base = Path(member.filename).name
            if member.is_dir() or not base.endswith(".csv") or base.startswith("."):
                continue
            with bundle.open(member) as source, open(destination / base, "wb") as out:
                shutil.copyfileobj(source, out)
