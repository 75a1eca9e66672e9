"""Test ROC-AUC per synthetic anomaly type: which kinds of anomaly a model finds and which it misses.

    python scripts/anomaly_types.py seq2gmm iforest --seeds 0 1 2
    python scripts/anomaly_types.py carla pca -o dataset=synthetic_points -o trainer.max_epochs=10

Each model is fitted once per seed on the synthetic data set of the config (train and val
hold no anomalies unless asked, so they do not depend on the anomaly types), then scored on
one test set per anomaly type, built with `dataset.anomaly_types=[<type>]`: that type's
anomalous series next to normal ones. Prints mean ± sample std over seeds at the data set's level.
"""

from __future__ import annotations

import argparse
import dataclasses
import os

import numpy as np


def type_aucs(model: str, seed: int, overrides: list[str]) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    from tsad.config import run_settings
    from tsad.evaluation.levels import level_arrays
    from tsad.models.base import detector_from_settings
    from tsad.runtime import resolve_device, seed_everything

    settings = run_settings([f"model={model}", f"seed={seed}", "trainer.progress=false", *overrides])
    if settings.dataset.family != "synthetic":
        raise SystemExit("anomaly types exist for the synthetic data sets only (dataset=synthetic or synthetic_points)")
    seed_everything(seed)
    data = settings.dataset.build()
    detector = detector_from_settings(settings, resolve_device(settings.device))
    detector.fit(data.train, data.val)
    aucs = {}
    for kind in settings.dataset.anomaly_types:
        test = dataclasses.replace(settings.dataset, anomaly_types=[kind]).build().test
        labels, scores = level_arrays(test, detector.score(test), data.level)
        finite = np.isfinite(scores)
        aucs[kind] = float(roc_auc_score(labels[finite], scores[finite]))
    return aucs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="registered model names")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("-o", "--override", action="append", default=[],
                        help="config override, e.g. -o dataset.magnitude=1")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    rows = {model: [type_aucs(model, seed, args.override) for seed in args.seeds] for model in args.models}
    kinds = list(next(iter(rows.values()))[0])
    print(f"{'model':<12}" + "".join(f"{kind:>16}" for kind in kinds))
    for model, per_seed in rows.items():
        cells = [np.array([aucs[kind] for aucs in per_seed]) for kind in kinds]
        print(f"{model:<12}" + "".join(f"{c.mean():>9.3f} ±{c.std(ddof=1) if len(c) > 1 else 0.0:.3f}" for c in cells))


if __name__ == "__main__":
    main()
