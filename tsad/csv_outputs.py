"""The CSV files a run writes besides its record: its scores (one file per series, one per step) and its training
history. Where they go is the caller's (tsad.run_folder.RunFolder names them).

Only the standard library at module level (pandas and numpy load when a file is written).
"""

from __future__ import annotations

from pathlib import Path


def write_scores(series_path: Path, steps_path: Path, data, scores, thresholds: dict | None = None,
                 step_columns: dict | None = None) -> None:
    """One row per series (`series_path`, CSV) and one row per step (`steps_path`, gzipped CSV).

    With `thresholds` ({level: value}) each file of a level that has one gains `alarm` (score > threshold, the
    rule of the metrics); steps gain `row` (the row in the source file) and `timestamp` where the data has them,
    and the `step_columns` given ({name: one value per step}).
    """
    import numpy as np
    import pandas as pd

    from tsad.evaluation.alarms import alarms

    thresholds = thresholds or {}
    for path in (series_path, steps_path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    series = pd.DataFrame({"series": data.names, "score": scores.series, "length": data.lengths})
    if data.series_labels is not None:
        series["label"] = data.series_labels
    if "series" in thresholds:
        series["alarm"] = alarms(series["score"].to_numpy(), thresholds["series"]).astype(int)
    series.to_csv(series_path, index=False)
    steps = pd.DataFrame({
        "series": np.repeat(data.names, data.lengths),
        "step": np.concatenate([np.arange(n) for n in data.lengths]),
        "score": np.concatenate(scores.steps),
    })
    if data.rows is not None:
        steps["row"] = np.concatenate(data.rows)
    if data.timestamps is not None:
        steps["timestamp"] = np.concatenate(data.timestamps)
    if data.step_labels is not None:
        steps["label"] = np.concatenate(data.step_labels)
    if "point" in thresholds:
        steps["alarm"] = alarms(steps["score"].to_numpy(), thresholds["point"]).astype(int)
    for name, values in (step_columns or {}).items():
        steps[name] = values
    steps.to_csv(steps_path, index=False)


def write_history(path: Path, history: list[dict]) -> None:
    """The training history, one row per epoch record (rewritten whole, so it can follow training epoch by epoch)."""
    import pandas as pd

    if history:
        pd.DataFrame(history).to_csv(path, index=False)
