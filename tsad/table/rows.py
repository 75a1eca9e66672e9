"""A run folder as the flat row a table makes of it: identity, status, threshold, metrics per level, validation,
NAB scores, timings, data and environment facts, then the config under config.*. A killed, unfinished or damaged
run is a row too, its status saying so.
"""

from __future__ import annotations

import json
from pathlib import Path

from tsad.json_files import load_json_object
from tsad.results import INCOMPLETE, OK, UNKNOWN, UNREADABLE
from tsad.run_folder import METRICS_FILE, RunFolder

LEVELS = ("series", "point")
# NAB's score per profile (NAB runs only): at the run's own threshold, and at thresholds optimised on the labels.
NAB_SCORES = ("nab_label_free", "oracle_nab")


def read_run(folder: Path) -> dict:
    """One flat row: identity, status, threshold, metrics, timings, then the config under config.*."""
    run = RunFolder(folder)
    config = run.config()
    row = {"run_dir": str(folder)}
    if not run.metrics.exists():
        record = {"status": INCOMPLETE, "error": f"no {METRICS_FILE}: the run was killed or has not finished"}
    else:
        try:
            record = load_json_object(run.metrics)
        except (OSError, ValueError) as error:
            record = {"status": UNREADABLE, "error": f"{METRICS_FILE}: {error}"}
    row["status"] = record.get("status") or (OK if record.get("metrics") else UNKNOWN)
    row["model"] = record.get("model") or _nested(config, "model", "name")
    row["dataset"] = record.get("dataset") or _nested(config, "dataset", "name")
    row["seed"] = record.get("seed", config.get("seed"))
    metrics = record.get("metrics") or {}
    if metrics and not all(isinstance(v, dict) for v in metrics.values()):
        metrics = {record.get("level") or _nested(config, "dataset", "level") or "series": metrics}
    row["level"] = (record.get("level") or _nested(config, "dataset", "level")
                    or next((level for level in LEVELS if level in metrics), None))
    row["error"] = record.get("error")
    row.update(flatten(record.get("threshold") or {}, "threshold"))
    for level, level_metrics in metrics.items():
        row.update(flatten(level_metrics, level))
    row.update(flatten(record.get("validation") or {}, "validation"))
    for key in NAB_SCORES:
        row.update(flatten(record.get(key) or {}, key))
    if "oracle_nab" not in record:  # older runs named the label-optimised NAB score plain `nab`
        row.update(flatten(record.get("nab") or {}, "oracle_nab"))
    timing = record.get("timing") or {}
    row.update({key: timing.get(key) for key in ("fit_seconds", "score_seconds", "total_seconds")})
    for key in ("n_parameters", "epochs_trained", "device"):
        if key in record:
            row[key] = record[key]
    if record.get("tags"):
        row["tags"] = ",".join(map(str, record["tags"]))
    row.update(flatten(record.get("data") or {}, "data"))
    row.update(flatten(record.get("environment") or {}, "environment"))
    row.update(flatten(config, "config"))
    return row


def _nested(mapping: dict, *keys):
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def flatten(mapping: dict, prefix: str) -> dict:
    """{'a': {'b': 1}, 'c': [1, 2]} -> {'prefix.a.b': 1, 'prefix.c': '[1, 2]'}."""
    flat = {}
    for key, value in mapping.items():
        name = f"{prefix}.{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(value)
        else:
            flat[name] = value
    return flat
