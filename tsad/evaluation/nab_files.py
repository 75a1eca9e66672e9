"""NAB's files for scoring: profiles and published thresholds, detector results CSVs, scoring a results folder.

A NAB copy holds config/profiles.json (the cost matrix of each profile), config/thresholds.json
(the thresholds NAB's published scores were computed at, optimised on the corpus labels) and,
per detector, results/<detector>/<category>/<detector>_<name>.csv with one row per data row.
The arithmetic is tsad/evaluation/nab_scoring.py; the data and its windows are tsad/data/nab*.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from tsad.data.nab_format import load_nab_windows, read_nab_json
from tsad.errors import UserError
from tsad.evaluation.nab_scoring import DEFAULT_PROFILES, score_corpus

PROFILES_PATH = Path("config") / "profiles.json"
THRESHOLDS_PATH = Path("config") / "thresholds.json"
RESULT_COLUMNS = ["timestamp", "value", "anomaly_score", "label"]


def load_nab_profiles(nab_root) -> dict[str, dict[str, float]]:
    """The cost matrix of each profile in config/profiles.json, or NAB's three defaults when it is absent."""
    path = Path(nab_root) / PROFILES_PATH
    if not path.is_file():
        return {name: dict(matrix) for name, matrix in DEFAULT_PROFILES.items()}
    profiles = read_nab_json(path, "the NAB profiles")
    try:
        return {name: {key: entry["CostMatrix"][key] for key in ("tpWeight", "fpWeight", "fnWeight")}
                for name, entry in profiles.items()}
    except (KeyError, TypeError) as error:
        raise UserError(f"{path}: each profile needs a CostMatrix with tpWeight, fpWeight and fnWeight") from error


def load_published_thresholds(nab_root, detector_name: str, profiles=None) -> dict[str, float]:
    """The per-profile thresholds in config/thresholds.json that NAB's published scores were computed at."""
    path = Path(nab_root) / THRESHOLDS_PATH
    published = read_nab_json(path, "the published NAB thresholds")
    if detector_name not in published:
        raise UserError(f"detector {detector_name!r} has no published thresholds in {path}; "
                        f"name one of {', '.join(sorted(published))} with --detector-name, "
                        "or use --thresholds optimize")
    profiles = list(DEFAULT_PROFILES) if profiles is None else list(profiles)
    missing = [profile for profile in profiles if profile not in published[detector_name]]
    if missing:
        raise UserError(f"{path} has no {detector_name} threshold for {', '.join(missing)}; use --thresholds optimize")
    return {profile: float(published[detector_name][profile]["threshold"]) for profile in profiles}


def load_detector_files(nab_root, detector_dir, detector_name: str | None = None,
                        file_names=None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{file name: (timestamps from data/, anomaly scores from the detector's result CSV)}.

    Result files are <detector_dir>/<category>/<detector>_<name>.csv, where <detector> is
    detector_name or else the folder's name. file_names defaults to every file with windows.
    """
    root, folder = _input_folders(nab_root, detector_dir)
    prefixes = list(dict.fromkeys(name for name in (detector_name, folder.name) if name))
    files, missing = {}, []
    for file_name in load_nab_windows(root) if file_names is None else file_names:
        result_path = next((path for path in (_result_path(folder, prefix, file_name) for prefix in prefixes)
                            if path.is_file()), None)
        if result_path is None:
            missing.append(str(_result_path(folder, prefixes[0], file_name)))
            continue
        timestamps = _read_column(root / "data" / file_name, "timestamp")
        scores = _read_column(result_path, "anomaly_score")
        if len(scores) != len(timestamps):
            raise UserError(f"{result_path} has {len(scores)} rows but {root / 'data' / file_name} has "
                            f"{len(timestamps)}; result files need one row per data row, in the same order")
        files[file_name] = (timestamps, scores)
    if missing:
        raise UserError(f"{len(missing)} result file(s) missing, e.g. {missing[0]}; "
                        "score a folder with one result file per NAB data file, or pass --detector-name")
    return files


def score_detector_dir(nab_root, detector_dir, detector_name: str | None = None,
                       thresholds: str | Mapping[str, float] = "published") -> dict:
    """Score a NAB results folder: score_corpus's result plus "detector" and "threshold_source".

    thresholds: "published" (config/thresholds.json for detector_name, which defaults to the
    folder's name), "optimize" (NAB's optimiser), or a {profile: threshold} mapping. Both
    "published" and "optimize" are thresholds optimised on the corpus labels (oracle scores).
    """
    root, folder = _input_folders(nab_root, detector_dir)
    detector_name = detector_name or folder.resolve().name
    profiles = load_nab_profiles(root)
    if thresholds == "published":
        chosen = load_published_thresholds(root, detector_name, profiles)
    elif thresholds == "optimize":
        chosen = None
    elif isinstance(thresholds, Mapping):
        chosen = thresholds
    else:
        raise UserError("thresholds must be 'published', 'optimize' or a {profile: threshold} mapping, "
                        f"got {thresholds!r}")
    windows = load_nab_windows(root)
    files = load_detector_files(root, detector_dir, detector_name, windows)
    result = score_corpus(files, windows, profiles, chosen)
    source = thresholds if isinstance(thresholds, str) else "given"
    return {"detector": detector_name, "threshold_source": source, **result}


def write_nab_results(out_dir, detector_name: str, file_name: str, timestamps, values,
                      anomaly_scores, labels) -> Path:
    """Write one series' detector output as <out_dir>/<detector>/<category>/<detector>_<name>.csv.

    The columns are those of NAB's detection step: timestamp, value, anomaly_score, label.
    NAB's scoring step later appends S(t)_<profile> columns; they are informational (their
    meaning changed between NAB versions) and scoring never reads them, so none are written.
    """
    path = _result_path(Path(out_dir) / detector_name, detector_name, file_name)
    stamps = pd.DatetimeIndex(pd.to_datetime(np.asarray(timestamps).ravel(), format="ISO8601"))
    table = pd.DataFrame({
        "timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"),
        "value": np.asarray(values).ravel(),
        "anomaly_score": np.asarray(anomaly_scores, dtype=np.float64).ravel(),
        "label": np.asarray(labels).astype(int).ravel(),
    }, columns=RESULT_COLUMNS)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return path


def _result_path(folder: Path, detector_name: str, file_name: str) -> Path:
    relative = Path(file_name)
    return folder / relative.parent / f"{detector_name}_{relative.name}"


def _input_folders(nab_root, detector_dir) -> tuple[Path, Path]:
    root = _existing_folder(nab_root, "NAB root", "point --nab-root at a copy of the NAB repository")
    folder = _existing_folder(detector_dir, "detector results folder",
                              "point --detector-dir at a folder holding <category>/<detector>_<name>.csv files")
    return root, folder


def _existing_folder(path, what: str, fix: str) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"{what} {folder} does not exist; {fix}")
    return folder


def _read_column(path: Path, column: str) -> np.ndarray:
    if not path.is_file():
        raise UserError(f"{path} is missing; point --nab-root at a copy of the NAB repository with its data/ folder")
    try:
        return pd.read_csv(path, usecols=[column])[column].to_numpy()
    except ValueError as error:
        reason = str(error).splitlines()[0]
        raise UserError(f"{path} has no readable {column!r} column ({reason}); "
                        "NAB CSVs need a header row naming it") from error
