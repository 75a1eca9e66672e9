"""What the NAB protocol writes besides the run's scores: NAB results CSVs, nab_per_file.csv, the example plot.

nab_results/<detector>/<category>/<detector>_<name>.csv are NAB's detection output, so that
scripts/nab_score.py (NAB's scorer) rescores a run. nab_per_file.csv holds the NAB scores of both
threshold sources (`label_free`, `oracle_label_optimised`), one row per source, profile and file;
plots/oracle_nab_examples.png is drawn at the oracle thresholds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tsad.data.nab import NABFile
from tsad.evaluation.alarms import alarms, at_or_above
from tsad.evaluation.nab_files import write_nab_results

# The threshold_source column of nab_per_file.csv: the run's own threshold, or NAB's optimised on the labels.
LABEL_FREE = "label_free"
ORACLE = "oracle_label_optimised"


def write_nab_results_file(out_dir: Path, detector_name: str, nab_file: NABFile, anomaly_scores) -> Path:
    return write_nab_results(out_dir, detector_name, nab_file.name, nab_file.timestamps, nab_file.values,
                             anomaly_scores, nab_file.labels)


def write_per_file(path: Path, files: list[NABFile], scored_by_source: dict[str, dict]) -> None:
    """One row per threshold source, profile and file: the threshold, raw score, windows detected, row counts.

    scored_by_source maps a source (LABEL_FREE, ORACLE) to score_corpus's result at its thresholds.
    """
    rows = [{"threshold_source": source, "profile": profile, "threshold": scored["thresholds"][profile],
             "file": f.name, "rows": len(f.values), "probationary_rows": f.probation,
             **scored["per_file"][profile][f.name]}
            for source, scored in scored_by_source.items() for profile in scored["per_file"] for f in files]
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)


def plot_nab_examples(path: Path, files: list[NABFile], anomaly_scores: list[np.ndarray], scored: dict,
                      profile: str = "standard") -> None:
    """The best and worst files by NAB raw score at the oracle thresholds of `scored` (optimised on the labels):
    values with windows, anomaly scores with the detections at that threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tsad.plotting import ANOMALY_COLOR, THRESHOLD_COLOR, save, shade

    per_file = scored["per_file"][profile]
    ranked = sorted(range(len(files)), key=lambda i: per_file[files[i].name]["raw_score"], reverse=True)
    chosen = list(dict.fromkeys(ranked[:2] + ranked[-2:]))
    threshold = scored["thresholds"][profile]
    figure, axes = plt.subplots(2, len(chosen), figsize=(4.5 * len(chosen), 6), squeeze=False,
                                gridspec_kw={"height_ratios": [2, 1]})
    for column, index in enumerate(chosen):
        nab_file, scores = files[index], anomaly_scores[index]
        rows = np.arange(len(scores))
        probation = rows < nab_file.probation
        value_axis, score_axis = axes[0, column], axes[1, column]
        value_axis.plot(rows, nab_file.values, lw=0.6)
        shade(value_axis, nab_file.labels == 1, ANOMALY_COLOR, "NAB window")
        shade(value_axis, probation, "grey", "probationary")
        result = per_file[nab_file.name]
        value_axis.set_title(f"{nab_file.name}\nraw {result['raw_score']:.2f}, windows "
                             f"{result['windows_detected']}/{result['windows']}, FP rows {result['fp']}", fontsize=8)
        score_axis.plot(rows, scores, color="black", lw=0.5)
        detected = alarms(scores, at_or_above(threshold)) & ~probation
        score_axis.plot(rows[detected], scores[detected], "o", ms=3, color=ANOMALY_COLOR,
                        label="detection at the oracle threshold")
        score_axis.axhline(threshold, color=THRESHOLD_COLOR, ls="--", lw=0.8,
                           label=f"oracle (label-optimised) {profile} threshold")
        score_axis.set(xlabel="row", ylabel="anomaly score", ylim=(-0.02, 1.05))
    handles = {}
    for axis in axes.ravel():
        for handle, label in zip(*axis.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    # Below the first score axis, so that the layout makes room for it whatever the number of columns.
    axes[1, 0].legend(handles.values(), handles.keys(), loc="upper left", bbox_to_anchor=(0.0, -0.35), fontsize=8,
                      frameon=False)
    figure.suptitle(f"NAB: best and worst files by raw {profile} score\nat the oracle (label-optimised) threshold",
                    fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    save(figure, path)
