"""The TSB-AD protocol (`dataset.protocol: tsb_ad`, datasets tsb_ad_u and tsb_ad_m): TSB-AD's benchmark scripts
(benchmark_exp/Run_Detector_{U,M}.py) run through tsad's detectors.

- A detector that needs a set of training series (`Detector.learns_from_one_series`) or gives every step its
  series' score (`scores_vary_within_series`: constant scores on a one-series file) is refused in one line
  before any work.
- Every file gets a fresh detector, seeded with the run's seed, fitted on rows [0, tr) (`dataset.train:
  semi_supervised`, tr from the file's name) or on every row (`unsupervised`), and every row is scored. Scores are
  the pipeline's (detector, then the run's post-processing); no threshold is chosen: TSB-AD's metrics search
  thresholds themselves.
- Per file: TSB-AD's sliding window (the first channel's autocorrelation period) and TSB-AD's nine metrics
  (tsad/evaluation/tsb_ad_metrics.py). per_file.csv holds one row per file: file, source, rows, train_rows,
  sliding_window, fit_seconds, score_seconds, the metrics, and error (empty unless the file failed). metrics.json's
  `metrics.point` and `tsb_ad.means` are the means over the files that ran; the headline leads with vus_pr.
- Files are independent, so they run in a pool of `dataset.workers` processes (default: the run's share of the cores
  it may use, tsad/cores.py), each with one torch and BLAS thread; with one worker they run in this process. A file
  runs the same way whichever worker takes it, so the results do not depend on the number of workers.
- A file that fails (a model error, NaN scores) is one warning and its row's `error`; the run fails only when every
  file does.
- A window model whose window is longer than a file's training part still runs (its windows are padded, as in
  offline runs); the files concerned are named in one warning before any fit.
- `dataset.window_from_period` sets a window model's window per file to that multiple of the file's sliding window
  (TSB-AD's Sub-* methods take the period as their window); per_file.csv's `model_window` holds the window used.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing import get_context

import numpy as np
import pandas as pd

from tsad.cores import share_now
from tsad.data.series import SeriesSet
from tsad.data.tsb_ad import TSBFile
from tsad.errors import UserError
from tsad.evaluation.tsb_ad_metrics import METRIC_KEYS, sliding_window, tsb_ad_metrics
from tsad.models.base import Scores, detector_from_settings
from tsad.models.window_scoring import WindowScorer
from tsad.pipeline import Pipeline
from tsad.protocols import PROTOCOLS, Protocol
from tsad.protocols.offline import check_postprocess
from tsad.run_folder import RunFolder
from tsad.runtime import resolve_device, seed_everything
from tsad.settings.run import ModelSettings

log = logging.getLogger(__name__)

PER_FILE_COLUMNS = ("file", "source", "rows", "train_rows", "sliding_window", "model_window", "fit_seconds",
                    "score_seconds", *METRIC_KEYS, "error")
HEADLINE_KEYS = ("vus_pr", "vus_roc", "auc_pr", "auc_roc", "standard_f1")


@PROTOCOLS.register("tsb_ad")
class TSBAD(Protocol):
    def check(self, settings) -> None:
        check_postprocess(settings.postprocess, settings.dataset.level)
        super().check(settings)
        if settings.dataset.window_from_period is not None and window_of(settings, "cpu") is None:
            raise UserError(f"dataset.window_from_period={settings.dataset.window_from_period} sets a window model's "
                            f"window, and model={settings.model.name} has none; set it to null or choose a window "
                            f"model (knn, pca, iforest, ...)")

    def check_detector(self, detector) -> None:
        """A TSB-AD file is one series: its detector learns from that series alone and must rank its steps."""
        if not detector.learns_from_one_series:
            raise UserError(f"model={detector.name} cannot run under the TSB-AD protocol: it learns from a set of "
                            f"training series, and a TSB-AD file is one series; choose a model that learns from one "
                            f"(knn, pca, iforest, ...)")
        if not detector.scores_vary_within_series:
            raise UserError(f"model={detector.name} cannot run under the TSB-AD protocol: it gives every step its "
                            f"series' score, and a TSB-AD file is one series, so its scores would be constant and "
                            f"TSB-AD's metrics meaningless; choose a model that scores each step (knn, pca, ...)")

    def run(self, settings, folder: RunFolder, epoch_callbacks: tuple = ()) -> dict:
        """Run `settings` under the TSB-AD protocol into `folder`; returns the result part of the run's record."""
        dataset = settings.dataset
        device = resolve_device(settings.device)
        corpus = dataset.load()
        warnings = corpus.warnings
        workers = worker_count(dataset.workers, len(corpus.files))
        window = window_of(settings, device)
        windows = [window if window is None else file_window(settings, f, window) for f in corpus.files]
        short = [f.file for f, window in zip(corpus.files, windows)
                 if window is not None and window > train_rows(f, dataset.train)]
        if short:
            warnings.add("window_padding", f"the model's window is longer than the training part of {len(short)} "
                                           f"file(s) (e.g. {short[0]}); their windows are padded")
        log.info("TSB-AD-%s protocol: %s on %d file(s) from %s, train=%s, %d worker(s)", dataset.benchmark,
                 settings.model.name, len(corpus.files), corpus.folder, dataset.train, workers)

        results = run_files(settings, device, corpus.files, workers)
        for result in results:
            if result.error:
                warnings.add("file_failed", f"{result.file}: {result.error}")
        ran = [(f, r) for f, r in zip(corpus.files, results) if not r.error]
        if not ran:
            raise UserError(f"every one of the {len(results)} file(s) failed; the first: {results[0].file}: "
                            f"{results[0].error}")

        folder.per_file.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame([r.row() for r in results], columns=list(PER_FILE_COLUMNS)).to_csv(folder.per_file, index=False)
        data = SeriesSet([f.values for f, _ in ran], step_labels=[f.labels for f, _ in ran],
                         names=[f.file for f, _ in ran])
        steps = [r.scores for _, r in ran]
        folder.write_scores("test", data, Scores(steps, np.array([s.max() for s in steps])))
        history = [{"file": r.file, **record} for _, r in ran for record in r.history]
        folder.write_history(history)

        means = {key: mean([r.metrics[key] for _, r in ran]) for key in METRIC_KEYS}
        return {
            "level": "point",
            "metrics": {"point": means},
            "tsb_ad": {"benchmark": dataset.benchmark, "list": dataset.list, "train": dataset.train,
                       "n_files": len(ran), "n_failed": len(results) - len(ran), "means": means},
            "validation": {},
            "headline": {key: means[key] for key in HEADLINE_KEYS},
            "threshold": {"rule": "none chosen: TSB-AD's metrics search their own thresholds"},
            "timing": {"fit_seconds": round(sum(r.fit_seconds for r in results), 3),
                       "score_seconds": round(sum(r.score_seconds for r in results), 3)},
            "n_parameters": ran[-1][1].n_parameters,
            "device": device,
            "data": {"n_files": len(corpus.files), "n_rows": int(sum(len(f.labels) for f in corpus.files)),
                     "n_channels": int(corpus.files[0].values.shape[1]), "workers": workers,
                     "sources": sorted({f.source for f in corpus.files}), "source": str(corpus.folder)},
            "epochs_trained": len([record for record in history if "epoch" in record]),
            "warnings": warnings.entries,
        }


@dataclass
class FileResult:
    """What one file's detector produced."""

    file: str
    source: str
    rows: int
    train_rows: int
    sliding_window: int | None = None
    model_window: int | None = None
    fit_seconds: float = 0.0
    score_seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    scores: np.ndarray | None = None  # [T] the pipeline's step scores
    history: list[dict] = field(default_factory=list)
    n_parameters: int = 0
    error: str = ""

    def row(self) -> dict:
        return {"file": self.file, "source": self.source, "rows": self.rows, "train_rows": self.train_rows,
                "sliding_window": self.sliding_window, "model_window": self.model_window,
                "fit_seconds": round(self.fit_seconds, 3), "score_seconds": round(self.score_seconds, 3),
                **self.metrics, "error": self.error}


def train_rows(tsb_file: TSBFile, train: str) -> int:
    return tsb_file.name.train_end if train == "semi_supervised" else len(tsb_file.labels)


def window_of(settings, device: str) -> int | None:
    detector = detector_from_settings(settings, device)
    return detector.window if isinstance(detector, WindowScorer) else None


def file_window(settings, tsb_file: TSBFile, model_window: int) -> int:
    """A window model's window on this file: `dataset.window_from_period` times the file's sliding window (at least
    2 rows), or model.window when that key is null."""
    multiple = settings.dataset.window_from_period
    return model_window if multiple is None else max(2, round(multiple * sliding_window(tsb_file.values)))


def file_settings(settings, tsb_file: TSBFile):
    """The run's settings for one file: the model's window set per file when `dataset.window_from_period` is."""
    if settings.dataset.window_from_period is None:
        return settings
    window = file_window(settings, tsb_file, settings.model.params.get("window", 0))
    return replace(settings, model=ModelSettings(settings.model.name, {**settings.model.params, "window": window}))


def worker_count(workers: int | None, n_files: int) -> int:
    """dataset.workers, or the run's share of the cores (those it may use, shared with the tsad runs computing beside
    it: tsad/cores.py); never more than there are files."""
    return max(1, min(workers or share_now(), n_files))


def run_files(settings, device: str, files: list[TSBFile], workers: int) -> list[FileResult]:
    """Every file's result, in file order: in this process with one worker, else in a pool of fresh processes."""
    if workers == 1:
        return [run_file(settings, device, tsb_file) for tsb_file in files]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=one_thread_each) as pool:
        return list(pool.map(run_file, [settings] * len(files), [device] * len(files), files))


def one_thread_each() -> None:
    """Pool workers share the cores: one torch and one BLAS/OpenMP thread each."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)


def run_file(settings, device: str, tsb_file: TSBFile) -> FileResult:
    """Fit a fresh, seeded detector on the file's training rows, score every row, compute TSB-AD's metrics; an
    error becomes the result's `error` (one line) instead of ending the run."""
    n_train = train_rows(tsb_file, settings.dataset.train)
    result = FileResult(tsb_file.file, tsb_file.source, len(tsb_file.labels), n_train)
    try:
        result.sliding_window = int(sliding_window(tsb_file.values))
        seed_everything(settings.seed)
        detector = detector_from_settings(file_settings(settings, tsb_file), device)
        result.model_window = detector.window if isinstance(detector, WindowScorer) else None
        pipeline = Pipeline(detector, settings.postprocess)
        started = time.perf_counter()
        pipeline.fit(SeriesSet([tsb_file.values[:n_train]]))
        result.fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        scores = pipeline.score(SeriesSet([tsb_file.values])).steps[0]
        result.score_seconds = time.perf_counter() - started
        if not np.isfinite(scores).all():
            raise UserError("the detector returned NaN or infinite scores; check the model's settings")
        result.metrics = {key: float(value) for key, value in
                          tsb_ad_metrics(tsb_file.labels, scores, result.sliding_window).items()}
        result.scores, result.history = scores, pipeline.detector.history
        result.n_parameters = pipeline.detector.n_parameters
    except Exception as error:  # noqa: BLE001 (one file's failure is recorded, the other files go on)
        message = str(error).splitlines()[0] if str(error) else ""
        result.error = f"{type(error).__name__}: {message}" if not isinstance(error, UserError) else message
    return result


def mean(values: list[float]) -> float | None:
    finite = [value for value in values if value is not None and np.isfinite(value)]
    return float(np.mean(finite)) if finite else None
