"""The NAB protocol (`dataset.protocol: nab`): NAB's online detection, one run over all selected files.

- The series are unrelated, so every file gets a fresh detector. It learns only from the file's
  probationary period (the first 15%, at most 750 rows), which NAB never scores.
- Every score at row t uses rows <= t only. A window detector scores row t with the window
  [t-L+1, t] alone, taking that window's last-step score (the last scored step if the model
  leaves it NaN); rows before the first full window have no score. Detectors without windows
  (random, zscore) score each step from that step and earlier ones and are run on whole prefixes.
  Torch models that read whole series at once cannot be scored causally and are refused.
- With `retrain_every=N`, a fresh detector is fitted on all rows seen so far every N rows after
  the probationary period and scores the next N rows.
- NAB wants anomaly scores in [0, 1] with one threshold for the whole corpus, while every
  detector (and every file's detector) has its own scale. A raw score is therefore mapped to its
  running rank: (1 + the number of the file's earlier scores strictly below it) / (the number of
  scores so far, itself included), i.e. pandas' expanding rank with ties ranked lowest, as a
  fraction. This is causal, needs no parameter, ignores any monotone rescaling of the detector,
  and puts all files on one scale, so a corpus threshold reads as "this score beats all but a
  fraction of the file's history"; 1.0 means a new record high. Ties rank low so that a flat
  score (a constant series) maps near 0 instead of firing on every row. The probationary
  (in-sample) scores start the history. Rows without a score (warm-up) get 0. Over the corpus
  this beat the alternatives tried (ties ranked high or averaged; a Gaussian tail fitted on the
  probationary scores or on all scores so far; the rank among the probationary scores alone):
  the fixed fits saturate at 1.0 on anomalies and level shifts, which ties detections together.

Thresholds. The NAB score a user gets is `nab_label_free` (and the headline's
`nab_label_free_standard`): the NAB score at the run's threshold policy applied to the
probationary rows' anomaly scores, so no label is read. NAB weighs false alarms and misses
differently per profile, so with threshold=fixed the low-FP and low-FN profiles may each be scored at a
fixed threshold of their own (`dataset.low_fp_threshold`, `dataset.low_fn_threshold`; threshold.value is
the standard profile's, and the alarms and point metrics use it). NAB's scoreboard procedure instead
optimises one threshold per profile on the corpus labels, which are the test labels; that score
is reported as `oracle_nab` (headline `oracle_nab_standard`, thresholds in
`nab_detail.oracle_thresholds`), like every other number that reads test labels, and it is the
one comparable to NAB's published scoreboard. Like NAB, the protocol detects rows scoring at or
above a threshold, so a threshold of 1.0 raises an alarm at every new record high. The
point-level metrics pool the scored (non-probationary) rows of all files and detect at that same
label-free threshold. nab_per_file.csv and plots/oracle_nab_examples.png are
tsad/protocols/nab_report.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np

from tsad.data.nab_format import probationary_length
from tsad.data.series import SeriesSet, constant_channels
from tsad.errors import UserError
from tsad.evaluation.alarms import at_or_above
from tsad.evaluation.nab_files import load_nab_profiles
from tsad.evaluation.nab_scoring import score_corpus
from tsad.evaluation.report import evaluate_level, headline
from tsad.evaluation.thresholds import Fixed, ThresholdPolicy, ValBestF1
from tsad.models.base import Scores, detector_from_settings
from tsad.models.window_scoring import WindowScorer
from tsad.pipeline import Pipeline
from tsad.postprocess import PostProcess
from tsad.protocols import PROTOCOLS, Protocol
from tsad.protocols.nab_report import LABEL_FREE, ORACLE, plot_nab_examples, write_nab_results_file, write_per_file
from tsad.run_folder import RunFolder
from tsad.run_warnings import RunWarnings
from tsad.runtime import resolve_device, seed_everything

log = logging.getLogger(__name__)


@PROTOCOLS.register("nab")
class NAB(Protocol):
    causal = True

    def check(self, settings) -> None:
        check_threshold_for(settings.postprocess, settings.threshold)
        check_profile_thresholds(settings.dataset, settings.threshold)
        super().check(settings)

    def check_detector(self, detector) -> None:
        check_causal(detector)

    def run(self, settings, folder: RunFolder, epoch_callbacks: tuple = ()) -> dict:
        """Run `settings` under the NAB protocol into `folder`; returns the result part of the run's record."""
        dataset, policy, postprocess = settings.dataset, settings.threshold, settings.postprocess
        device = resolve_device(settings.device)
        seed_everything(settings.seed)
        detector_name = settings.model.name
        make_detector = partial(detector_from_settings, settings, device, causal=True,
                                epoch_callbacks=epoch_callbacks)

        corpus = dataset.load()
        profiles = load_nab_profiles(corpus.folder)
        profile_thresholds = dataset.profile_thresholds()
        check_profiles_known(profile_thresholds, profiles, corpus.folder)
        log.info("NAB protocol: %s on %d file(s) from %s, retrain_every=%s", detector_name, len(corpus.files),
                 corpus.folder, dataset.retrain_every)
        warnings = RunWarnings()
        for nab_file in corpus.files:
            for flat in constant_channels(SeriesSet([nab_file.values[:nab_file.probation]]), ["value"]):
                warnings.add("constant_channels", f"{nab_file.name}: in the probationary rows its detector learns "
                                                  f"from, {flat}")
        detections, history = [], []
        for nab_file in corpus.files:
            detection = detect_online(make_detector, nab_file.values, dataset.retrain_every, nab_file.name,
                                      postprocess)
            detections.append(detection)
            history += [{"file": nab_file.name, **record} for record in detection.history]
            detection.pipeline.detector.save(folder.model / Path(nab_file.name).with_suffix(""))
            write_nab_results_file(folder.nab_results, detector_name, nab_file, detection.anomaly_scores)
            log.info("%s: fit %.1f s, score %.1f s", nab_file.name, detection.fit_seconds, detection.score_seconds)

        label_free, oracle, threshold = score_nab(corpus.files, [d.raw_scores for d in detections],
                                                  [d.anomaly_scores for d in detections], policy, profiles,
                                                  profile_thresholds)
        thresholds = {"point": at_or_above(threshold)}  # NAB detects scores >= its threshold

        after_probation = SeriesSet([f.values[f.probation:] for f in corpus.files],
                                    step_labels=[f.labels[f.probation:] for f in corpus.files],
                                    names=[f.name for f in corpus.files])
        point = evaluate_level(np.concatenate(after_probation.step_labels),
                               np.concatenate([d.anomaly_scores[f.probation:]
                                               for f, d in zip(corpus.files, detections)]),
                               thresholds["point"], "point", data=after_probation, warnings=warnings)

        everything = SeriesSet([f.values for f in corpus.files], step_labels=[f.labels for f in corpus.files],
                               timestamps=[f.timestamps for f in corpus.files], names=[f.name for f in corpus.files])
        steps = [d.anomaly_scores for d in detections]
        folder.write_scores("test", everything, Scores(steps, np.array([s.max() for s in steps])), thresholds,
                            step_columns={"raw_score": np.concatenate([d.raw_scores for d in detections])})
        folder.write_history(history)
        write_per_file(folder.nab_per_file, corpus.files, {LABEL_FREE: label_free, ORACLE: oracle})
        if settings.plots:
            plot_nab_examples(folder.plots / "oracle_nab_examples.png", corpus.files, steps, oracle)

        return {
            "level": "point",
            "metrics": {"point": point},
            "nab_label_free": label_free["scores"],
            "oracle_nab": oracle["scores"],
            "nab_detail": {
                "label_free_threshold": threshold,
                "label_free_thresholds": label_free["thresholds"],
                "label_free_raw_scores": label_free["raw_scores"],
                "label_free_counts": label_free["counts"],
                "oracle_thresholds": oracle["thresholds"],
                "oracle_raw_scores": oracle["raw_scores"],
                "oracle_counts": oracle["counts"],
                "score_mapping": "running rank of the detector's raw scores within each file (ties low)",
                "postprocess": asdict(postprocess),
                "results_dir": (folder.nab_results / detector_name).relative_to(folder.root).as_posix(),
            },
            "validation": {},
            # NAB's own measure first: the point metrics rank rows of post-processed (rest-suppressed) scores
            "headline": {"nab_label_free_standard": label_free["scores"].get("standard"),
                         "oracle_nab_standard": oracle["scores"].get("standard"),
                         **headline({"point": point}, "point")},
            "threshold": {**policy.record(), "source": "probationary rows",
                          "rule": "anomaly score >= value (NAB's rule)", "values": {"point": threshold}},
            "timing": {"fit_seconds": round(sum(d.fit_seconds for d in detections), 3),
                       "score_seconds": round(sum(d.score_seconds for d in detections), 3)},
            "n_parameters": detections[-1].pipeline.detector.n_parameters,
            "device": device,
            "data": {"n_files": len(corpus.files), "n_rows": int(sum(len(f.values) for f in corpus.files)),
                     "n_probationary_rows": int(sum(f.probation for f in corpus.files)),
                     "n_windows": sum(len(f.window_rows) for f in corpus.files),
                     "n_channels": 1, "n_fits": sum(d.n_fits for d in detections),
                     "retrain_every": dataset.retrain_every,
                     "categories": sorted({f.category for f in corpus.files}), "source": str(corpus.folder)},
            "epochs_trained": len([record for record in history if "epoch" in record]),
            "warnings": warnings.entries,
        }


# -- detecting online ---------------------------------------------------------------------------

@dataclass
class FileDetection:
    """What the online protocol produced for one file."""

    raw_scores: np.ndarray  # [T] the detector's scores, NaN where a row has none (window warm-up)
    anomaly_scores: np.ndarray  # [T] in [0, 1], the running rank of raw_scores, then the run's postprocess
    fit_seconds: float
    score_seconds: float
    history: list[dict]  # training history of every fit, in order
    n_fits: int
    pipeline: Pipeline  # the last detector fitted, with the run's post-processing


def check_causal(detector):
    """Return `detector` if its score at a row reads no later row; refuse it otherwise."""
    if detector.reads_whole_series():
        raise UserError(f"model {detector.name} reads whole series at once, so its score at a row would use "
                        "later rows; the NAB protocol needs causal scores: use a window model")
    if uses_windows(detector) and not detector.causal:
        raise TypeError("the NAB protocol scores window detectors built with causal=True only")
    return detector


def uses_windows(detector) -> bool:
    return isinstance(detector, WindowScorer)


def detect_online(make_detector: Callable, values: np.ndarray, retrain_every: int | None = None,
                  name: str = "series", postprocess: PostProcess | None = None) -> FileDetection:
    """Run the NAB protocol on one series [T] or [T, C]: fit on the probationary rows, score causally.

    make_detector returns a fresh, unfitted detector (window detectors built with causal=True).
    """
    values = as_rows(values)
    n_rows, probation = len(values), probationary_length(len(values))
    if probation < 2:
        raise UserError(f"{name}: {n_rows} rows leave {probation} probationary rows to learn from; "
                        "NAB files need at least 14 rows")
    fit_ends = [probation]
    if retrain_every is not None:
        fit_ends += list(range(probation + retrain_every, n_rows, retrain_every))
    raw = np.full(n_rows, np.nan)
    fit_seconds = score_seconds = 0.0
    history, detector = [], None
    for number, fit_end in enumerate(fit_ends):
        detector = check_causal(make_detector())
        if uses_windows(detector) and detector.window > fit_end:
            raise UserError(f"{name}: model.window={detector.window} is longer than the {fit_end} rows it may "
                            f"learn from (the probationary period); use model.window<={probation}")
        started = time.perf_counter()
        detector.fit(SeriesSet([values[:fit_end]]))
        fit_seconds += time.perf_counter() - started
        history += [{"fit": number, **record} for record in detector.history]
        first = 0 if number == 0 else fit_end
        end = fit_ends[number + 1] if number + 1 < len(fit_ends) else n_rows
        started = time.perf_counter()
        raw[first:end] = score_rows(detector, values, first, end)
        score_seconds += time.perf_counter() - started
    scored = np.flatnonzero(~np.isnan(raw))
    if len(scored) and not np.isfinite(raw[scored[0]:]).all():
        raise UserError(f"{name}: the detector returned NaN or infinite scores; check the model's settings")
    pipeline = Pipeline(detector, postprocess or PostProcess(), ranks=True)
    anomaly = pipeline.step_scores(values, raw)
    return FileDetection(raw, anomaly, fit_seconds, score_seconds, history, len(fit_ends), pipeline)


def as_rows(values: np.ndarray) -> np.ndarray:
    """A file's values as the protocol reads them: float32 [T, C]."""
    values = np.asarray(values, dtype=np.float32)
    return values[:, None] if values.ndim == 1 else values


def score_nab(files: list, raw_scores: list, anomaly: list, policy: ThresholdPolicy, profiles: dict,
              profile_thresholds: dict[str, float] | None = None):
    """NAB's scores of the files' anomaly scores: (label-free, oracle, the label-free threshold).

    Label-free: the threshold policy applied to the probationary rows' scores, except for the profiles that
    `profile_thresholds` gives a fixed threshold of their own. Oracle: one threshold per profile optimised on the
    corpus labels, as NAB's scoreboard does.
    """
    scored = {f.name: (f.timestamps, a) for f, a in zip(files, anomaly)}
    windows = {f.name: f.windows for f in files}
    oracle = score_corpus(scored, windows, profiles)
    probationary = np.concatenate([a[:f.probation][~np.isnan(r[:f.probation])]
                                   for f, r, a in zip(files, raw_scores, anomaly)])
    threshold = label_free_threshold(policy, probationary)
    thresholds = {profile: (profile_thresholds or {}).get(profile, threshold) for profile in profiles}
    return score_corpus(scored, windows, profiles, thresholds), oracle, threshold


def score_rows(detector, values: np.ndarray, first: int, end: int) -> np.ndarray:
    """Scores of rows first..end-1, each computed from rows up to it only (the detector passed check_causal)."""
    if not uses_windows(detector):
        return detector.score(SeriesSet([values[:end]])).steps[0][first:]
    context = max(0, first - detector.window + 1)
    steps = detector.score(SeriesSet([values[context:end]])).steps[0]
    return steps[first - context:]


# -- the label-free threshold -------------------------------------------------------------------

def check_threshold_for(postprocess: PostProcess, policy: ThresholdPolicy) -> None:
    """The likelihood gives every probationary row the same score: a threshold taken on them means nothing."""
    if postprocess.likelihood and not isinstance(policy, Fixed):
        raise UserError(f"postprocess={postprocess.name} scores every probationary row alike, so threshold="
                        f"{policy.name} has nothing to learn from; use threshold=fixed "
                        "threshold.value=0.5 (the likelihood's red zone, tail probability 1e-5)")


def check_profile_thresholds(dataset, policy: ThresholdPolicy) -> None:
    """A profile's own threshold is a fixed value on the anomaly scores, beside threshold.value's."""
    given = {"dataset.low_fp_threshold": dataset.low_fp_threshold, "dataset.low_fn_threshold": dataset.low_fn_threshold}
    key, value = next(((key, value) for key, value in given.items() if value is not None), (None, None))
    if key is not None and not isinstance(policy, Fixed):
        raise UserError(f"{key}={value} is a fixed threshold for one NAB profile, beside threshold.value (the "
                        f"standard profile's); threshold={policy.name} has none: use threshold=fixed")


def check_profiles_known(profile_thresholds: dict[str, float], profiles: dict, folder: Path) -> None:
    unknown = sorted(set(profile_thresholds) - set(profiles))
    if unknown:
        raise UserError(f"{folder}: its config/profiles.json has no profile {unknown[0]!r} to score at the threshold "
                        "given for it; set dataset.low_fp_threshold and dataset.low_fn_threshold to null")


def label_free_threshold(policy: ThresholdPolicy, probationary_scores: np.ndarray) -> float:
    """The run's threshold policy applied to the anomaly scores of the probationary rows (no labels)."""
    if isinstance(policy, ValBestF1):
        raise UserError("threshold=val_best_f1 needs labelled validation data, which NAB does not have; "
                        "use val_percentile, contamination, sigma or fixed")
    return policy.from_scores(probationary_scores)
