"""`tsad-table`: benchmark tables from finished run folders.

    tsad-table outputs/multiruns/2026-11-22 [more folders...] --metric vus_pr --out tables/

Every folder under the given paths that holds a metrics.json (or a .hydra/config.yaml
but no metrics.json: a run that was killed or is still running) is one run. Writes
results.csv (one row per run: flattened config, seed, status, every metric, timings),
a Markdown and a LaTeX table (rows = models, columns = datasets, cells = mean ± std over
seeds, best per column in bold, failed runs counted), and a figure with a heatmap and the
average rank of each model across datasets.

A bare metric name (`--metric roc_auc`) is looked up at each dataset's natural level
(series.roc_auc on series-level data, point.roc_auc on point-level data); a dotted name
(`point.vus_pr`, `validation.val_loss`) is taken as it is. NAB runs add NAB's score per profile
at the run's own threshold (`nab_label_free.standard`, ...) and at thresholds optimised on the
test labels as on NAB's scoreboard (`oracle_nab.standard`, ...). Without --metric, vus_pr when every run is
point-level, else roc_auc; without --out, `tables/` beside the runs; the output says both.

    tsad-table outputs/multiruns/2026-11-22/10-00-00 --best validation.val_loss

prints the sweep's best run by a validation metric (never a test one) and the tsad-predict command
that uses it, and writes no tables.

    rows.py     one run folder as a flat row (identity, status, metrics, timings, config)
    frame.py    the runs as one frame and the table's metric
    summary.py  cells (mean ± std over seeds), best per column, average ranks, the caption's notes
    render.py   Markdown, LaTeX and the figure
    best.py     --best: the best run by a validation metric
    leaderboard.py          --leaderboard: TSB-AD runs beside TSB-AD's leaderboard on the files they share
    tsb_ad_reference.py     the leaderboard's per-file VUS-PR tables shipped in tsb_ad_leaderboard/
    command.py  the command line (`main`, the console script tsad-table)
"""

from tsad.table.command import main

__all__ = ["main"]
