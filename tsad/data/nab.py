"""The Numenta Anomaly Benchmark (NAB) and the NAB protocol: `tsad-run dataset=nab model=...`.

Data. NAB v1.1 holds 58 univariate series in 7 categories (data/<category>/<name>.csv, columns
timestamp,value) and their anomaly windows (labels/combined_windows.json, inclusive timestamp
pairs). The folder is `dataset.root`, else $TSAD_DATA_DIR/NAB, else the per-user cache; missing
files are downloaded there from the pinned NAB commit (MIT licence) and checked against their
sha256. Rows are identified by position: files are never sorted or de-duplicated (some repeat
timestamps or go back in time). A row is labelled 1 when it lies inside a window.

Protocol (NAB's online detection, one run over all selected files):
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
probationary rows' anomaly scores, so no label is read. NAB's scoreboard procedure instead
optimises one threshold per profile on the corpus labels, which are the test labels; that score
is reported as `oracle_nab` (headline `oracle_nab_standard`, thresholds in
`nab_detail.oracle_thresholds`), like every other number that reads test labels, and it is the
one comparable to NAB's published scoreboard. Like NAB, the protocol detects rows scoring at or
above a threshold, so a threshold of 1.0 raises an alarm at every new record high. The
point-level metrics pool the scored (non-probationary) rows of all files and detect at that same
label-free threshold. nab_per_file.csv holds both, one row per threshold source (`label_free`,
`oracle_label_optimised`), profile and file; plots/oracle_nab_examples.png is drawn at the
oracle thresholds.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from tsad.data.locate import locate
from tsad.data.series import SeriesSet
from tsad.errors import UserError
from tsad.evaluation.nab import load_nab_windows, probationary_length, windows_to_rows

log = logging.getLogger(__name__)

NAB_COMMIT = "ea702d75cc2258d9d7dd35ca8e5e2539d71f3140"
RAW_URL = f"https://raw.githubusercontent.com/numenta/NAB/{NAB_COMMIT}"
WINDOWS_FILE = "labels/combined_windows.json"
WINDOWS_SHA256 = "1e1fbc4601321aad8d0f8b3784c8134299379f68f6c1f7777565f8ffd57ab6b1"
# sha256 of every data file at the pinned commit, keyed by its name in the windows file.
DATA_SHA256 = {
    "artificialNoAnomaly/art_daily_no_noise.csv": "ccb7743ac2de8ca110db4af796d11ba31a23ad448a28e353a935c15f637756bc",
    "artificialNoAnomaly/art_daily_perfect_square_wave.csv": "662ff0a295b81eb0ff8e81116a54a497cd6f6b07c19c7a5ea72cce494913ce62",
    "artificialNoAnomaly/art_daily_small_noise.csv": "c4b304229f69f108eaa024fb2406fcd4510c5c5d95cd0053e2da6989682e4e6d",
    "artificialNoAnomaly/art_flatline.csv": "1cc10761ddd6d55fb5f0d9cfc73610416abbb120ee14bb65eff288509a463397",
    "artificialNoAnomaly/art_noisy.csv": "ad455adeaf06852222500955f2aefe6bd389cc762ef68e7102ee543209c8607f",
    "artificialWithAnomaly/art_daily_flatmiddle.csv": "ea5df125947e9ee2b977ac3d341f3c2a029588862af97cae4a654fc56e838702",
    "artificialWithAnomaly/art_daily_jumpsdown.csv": "4af31802e87dff4b4ba3ceb21714ba9d905f7888e1f53d47cc6dd4f856f9debc",
    "artificialWithAnomaly/art_daily_jumpsup.csv": "f79f92b93ee4f9c10e2dc552505e8880b0c618639ed5e0f9816e044b75c26456",
    "artificialWithAnomaly/art_daily_nojump.csv": "65c85d1834376ed5e622f01721d478609577ea0df0a067c5a5ebe5edea03b077",
    "artificialWithAnomaly/art_increase_spike_density.csv": "0959d8871d5c1a3fc3120fb7421e4ef113fffb434af2889085b52aebdb69360c",
    "artificialWithAnomaly/art_load_balancer_spikes.csv": "99f7130e54c7c3e818df8e3bdc0974cd241914bb14a10a9c3fa7c1374125d224",
    "realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv": "ab446fbd8b9f37507eb2fdb06315826d8daeef02e241133ce06e0ee571ba53d9",
    "realAWSCloudwatch/ec2_cpu_utilization_53ea38.csv": "8942e498de7b40f1b4a6d802755592c09b8fb73ce8f658763a09cb9ea1ea94ac",
    "realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv": "01613e6f632d067f11a5dfd40a188b0789752b388d9bc77a398bd06333878a76",
    "realAWSCloudwatch/ec2_cpu_utilization_77c1ca.csv": "90ceabd570b449241ee24ff8a116a793979b7671ce4490707311bfea0e0aae1f",
    "realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv": "d768419037c9db269343822957314f57ee21a7d9a4d41df2add0d1ba45ba84de",
    "realAWSCloudwatch/ec2_cpu_utilization_ac20cd.csv": "749a15c2e1a4543c21fee9cbf3338cd8a7ed5f5f8a1308b9b099b06c2c66e66b",
    "realAWSCloudwatch/ec2_cpu_utilization_c6585a.csv": "d936cea74682ed43ac96b778352d7de294c0b0c168f4a7e6817162346cdb28c1",
    "realAWSCloudwatch/ec2_cpu_utilization_fe7f93.csv": "f3433f8171f4dcea86c0c7af9996d0f166f812fa0f4567f1d5cd85d2d2cd69b4",
    "realAWSCloudwatch/ec2_disk_write_bytes_1ef3de.csv": "ce3d6c6a652ed7c31a6dd3727a36e128fcac6fb2381c63267ad0fbc02eccd9df",
    "realAWSCloudwatch/ec2_disk_write_bytes_c0d644.csv": "a0e734a66098bb81833835f0839dadafbc8ae829c51494670ee8849e46eb5b63",
    "realAWSCloudwatch/ec2_network_in_257a54.csv": "39104b08f2e0a673b5137eb7681897fcadf0955fedf565740a6a94edc63a81a4",
    "realAWSCloudwatch/ec2_network_in_5abac7.csv": "c27ef93f582af63bf42e80d804764cbe64ae987620f3cfab5477d6ebb3c6157e",
    "realAWSCloudwatch/elb_request_count_8c0756.csv": "74c26574a01ca9fb89dddb5021e2e13c3a93eb25dc640438a9acb1ceb00f1021",
    "realAWSCloudwatch/grok_asg_anomaly.csv": "86a0abe9d58e376858d2fd4f4a438f1997e24c64a09e5af03accd4e1b372ac47",
    "realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv": "f115fbe6542159eed5612445bfa620708a28ab6b41349d1432bb15c3a3b8414d",
    "realAWSCloudwatch/rds_cpu_utilization_cc0c53.csv": "d5df979ef85928769a016cd0f935919d8c2a113926e21e1eb3a5001d688760e2",
    "realAWSCloudwatch/rds_cpu_utilization_e47b3b.csv": "6b712b922ab3b3404c5a629d64a570c390c99471ee8b9b0ff7665f553fda92c1",
    "realAdExchange/exchange-2_cpc_results.csv": "d869ab165254f3ee77ee21fd9fab2be1d07c1f80b8133cf01bbaf2d768c2ac64",
    "realAdExchange/exchange-2_cpm_results.csv": "1f01b9438566d2fe1ac446faa202a395ac86db9240a1955bc1f118c8eada2a19",
    "realAdExchange/exchange-3_cpc_results.csv": "e70b24dba107a2589657cb3feb9ca5605b4f3f7de49ff445f32f5991bc0bdbe5",
    "realAdExchange/exchange-3_cpm_results.csv": "74d354a94fb1730e14b469c7c1c6e99c2ad69af53afdb85f65220bd3cf01ce4a",
    "realAdExchange/exchange-4_cpc_results.csv": "d4c13abd6f28594dc446f22106562ebe917fdbe76170f60a500c2a402ecc09e2",
    "realAdExchange/exchange-4_cpm_results.csv": "4e5c955b632145b77b93fba4a5e3bf615d47e00416e17091d64e05ae109c760e",
    "realKnownCause/ambient_temperature_system_failure.csv": "230b68ccca20f59d562afd5d24ad52939c9b784386bed0054018358bf9120581",
    "realKnownCause/cpu_utilization_asg_misconfiguration.csv": "58ba65dc0737cfbac11b51514476d50c438d44011232144bb8d93f392df58f9f",
    "realKnownCause/ec2_request_latency_system_failure.csv": "98378580aa80157e057c61d59d81daddccc6c65a2c0c800e3f01f603b8215c3f",
    "realKnownCause/machine_temperature_system_failure.csv": "92bf5b87fc7f9bba8ca0b7ec63ccaac8cb4a1371a258e8c29a10ae9c018d82a4",
    "realKnownCause/nyc_taxi.csv": "d8fa6f7f0734bf5c8be12c52a94e20a82664c397d9dec4449156bd453d32856d",
    "realKnownCause/rogue_agent_key_hold.csv": "47b110baa8e3636574c1033dda1cce780873647fab58223d159d4fee6f180e86",
    "realKnownCause/rogue_agent_key_updown.csv": "9797cfef477c13306f7a33874ab4d6cf700f8f2c7e5825a2a5bc02004370909a",
    "realTraffic/TravelTime_387.csv": "38e70e9ead8227fd023bff6e93247d5bc01ee008f781b921a156962419b399bb",
    "realTraffic/TravelTime_451.csv": "7c174adfc457b201cd111d60688f7ec37eb7201c8080790dc41eeff477bd7345",
    "realTraffic/occupancy_6005.csv": "cd357d7820d675074270fd976d4af1fc1e7854ecb764783028cbcb18d980c91d",
    "realTraffic/occupancy_t4013.csv": "5663a8122a300360eb51fbbd0f21706da05af1af55262926d6a226bb6d071704",
    "realTraffic/speed_6005.csv": "7976e7596cd1e579696c737576e96a26fe041484472ed7d0a463ce2b094d7aa7",
    "realTraffic/speed_7578.csv": "15ba994384730cb5a2e6818f17ded1430b40d92eb7a08e5b1a48a445c8c350f6",
    "realTraffic/speed_t4013.csv": "fa5532d6f7db36cadc73e657fd4dfef05cb1ec44d4010243b314d3f1bbd6a7b5",
    "realTweets/Twitter_volume_AAPL.csv": "826f5cf404c2890784a7824f7102fd00cb134a4948e12e44ec320d095cbbc217",
    "realTweets/Twitter_volume_AMZN.csv": "234f5e63f19a62720dfb7ccfd6ecc8349b94d93b33ef8aafbdb17edda0b654f3",
    "realTweets/Twitter_volume_CRM.csv": "e7133bf26479623d58fc7367107aea1cd7df6020420dece48b0eee4d26cdb28a",
    "realTweets/Twitter_volume_CVS.csv": "f0bdc89cba3dd2265b47069187c750eeae18ef48f76f86067ee26ea1af9c3114",
    "realTweets/Twitter_volume_FB.csv": "a7096bd646759486bda6796b5600cd33a4590f0842bf274ea7acba001b3ba591",
    "realTweets/Twitter_volume_GOOG.csv": "3a39cc23d1ff6a0f234b55298d0c46c21d2e94ddb81a0dad9e1e46e3aaa9ec90",
    "realTweets/Twitter_volume_IBM.csv": "4309bd56d28ddcbdc168e207da9717395fa2e9f74dba41fa768e0f7da8a116fa",
    "realTweets/Twitter_volume_KO.csv": "f3aa8157043c6569911031535bd1f7a73b428b5a2d95238d79b9d5b88ceebbd2",
    "realTweets/Twitter_volume_PFE.csv": "18d2804d6a5dae63fe711baaba9242dce38a32bfade3dcdee1d8a7c1a866e41b",
    "realTweets/Twitter_volume_UPS.csv": "be50f06bbb9d020f37653c8c5cf19af63f77aa0019d8cf10849d91f4af455af4",
}
# The threshold_source column of nab_per_file.csv: the run's own threshold, or NAB's optimised on the labels.
LABEL_FREE = "label_free"
ORACLE = "oracle_label_optimised"
DATASET_KEYS = ("family", "name", "level", "protocol", "normalise", "root", "category", "files", "retrain_every")


@dataclass
class NABFile:
    """One NAB series: rows in file order, its windows as timestamps and as inclusive row pairs."""

    name: str  # "<category>/<file>.csv", as in the windows file
    timestamps: np.ndarray  # [T] strings as written in the file
    values: np.ndarray  # [T] float64
    windows: list[tuple[str, str]]
    window_rows: list[tuple[int, int]]

    @property
    def category(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def labels(self) -> np.ndarray:
        labels = np.zeros(len(self.values), dtype=np.int64)
        for first, last in self.window_rows:
            labels[first:last + 1] = 1
        return labels

    @property
    def probation(self) -> int:
        return probationary_length(len(self.values))


@dataclass
class NABCorpus:
    folder: Path
    files: list[NABFile]


def load_nab(root=None, category=None, files=None) -> NABCorpus:
    """The selected NAB files: all of them, those of one or more categories, or the listed files."""
    folder = locate("NAB", root, {WINDOWS_FILE: f"{RAW_URL}/{WINDOWS_FILE}"}, {WINDOWS_FILE: WINDOWS_SHA256})
    windows = load_nab_windows(folder)
    names = select_files(sorted(windows), category, files)
    data_paths = {f"data/{name}": name for name in names}
    locate("NAB", root, {path: f"{RAW_URL}/{path}" for path in data_paths},
           {path: DATA_SHA256[name] for path, name in data_paths.items() if name in DATA_SHA256})
    return NABCorpus(folder, [read_nab_file(folder, name, windows[name]) for name in names])


def select_files(corpus: list[str], category, files) -> list[str]:
    """File names in corpus order for a category (or list of them), or the given files in their order."""
    if category is not None and files is not None:
        raise UserError("set either dataset.category or dataset.files, not both")
    if files is not None:
        wanted = [files] if isinstance(files, str) else list(files)
        chosen = [name if name.endswith(".csv") else f"{name}.csv" for name in map(str, wanted)]
        unknown = [name for name in chosen if name not in corpus]
        if unknown:
            raise UserError(f"dataset.files: {unknown[0]} is not a NAB file; name files as <category>/<name>.csv, "
                            f"e.g. {corpus[0]}")
        if len(set(chosen)) < len(chosen):
            raise UserError("dataset.files lists a file twice; list each file once")
        if not chosen:
            raise UserError("dataset.files is empty; list files or set it to null for the whole corpus")
        return chosen
    if category is None:
        return list(corpus)
    categories = [category] if isinstance(category, str) else list(category)
    known = sorted({name.split("/", 1)[0] for name in corpus})
    unknown = [c for c in categories if c not in known]
    if unknown:
        raise UserError(f"dataset.category={unknown[0]} is not a NAB category; choose from {', '.join(known)}")
    if not categories:
        raise UserError("dataset.category is an empty list; name a category or set it to null for every file")
    return [name for name in corpus if name.split("/", 1)[0] in categories]


def read_nab_file(folder: Path, name: str, windows: list[tuple[str, str]]) -> NABFile:
    import pandas as pd

    path = Path(folder) / "data" / name
    try:
        table = pd.read_csv(path, dtype={"timestamp": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read it as CSV ({type(error).__name__}); restore it from NAB") from None
    if list(table.columns[:2]) != ["timestamp", "value"]:
        raise UserError(f"{path}: the header must start with timestamp,value (NAB's format), "
                        f"got {','.join(map(str, table.columns))}")
    values = pd.to_numeric(table["value"], errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        row = int(np.argmin(np.isfinite(values)))
        raise UserError(f"{path}: row {row} has no finite value; NAB files hold a number in every row")
    timestamps = table["timestamp"].to_numpy()
    return NABFile(name, timestamps, values, list(windows), windows_to_rows(timestamps, windows, name))


# -- the protocol -------------------------------------------------------------------------------

@dataclass
class FileDetection:
    """What the online protocol produced for one file."""

    raw_scores: np.ndarray  # [T] the detector's scores, NaN where a row has none (window warm-up)
    anomaly_scores: np.ndarray  # [T] in [0, 1], the running rank of raw_scores
    fit_seconds: float
    score_seconds: float
    history: list[dict]  # training history of every fit, in order
    n_fits: int
    detector: object  # the last detector fitted


def running_rank(raw_scores: np.ndarray) -> np.ndarray:
    """Causal map to [0, 1]: rank (ties low) of each score among the scores so far, over their count.

    NaN (no score yet) maps to 0 and is not counted.
    """
    import pandas as pd

    mapped = np.zeros(len(raw_scores))
    scored = np.flatnonzero(~np.isnan(raw_scores))
    if len(scored):
        mapped[scored] = pd.Series(raw_scores[scored]).expanding().rank(method="min", pct=True).to_numpy()
    return mapped


def uses_windows(detector) -> bool:
    from tsad.models.base import WindowScorer

    return isinstance(detector, WindowScorer)


def prepare_for_nab(detector):
    """Set a fresh detector up for causal scoring; refuse one whose scores would read later rows."""
    from tsad.models.base import TorchDetector

    if isinstance(detector, TorchDetector) and detector.input_mode != "windows":
        raise UserError(f"model {detector.name} reads whole series at once, so its score at a row would use "
                        "later rows; the NAB protocol needs causal scores: use a window model")
    if uses_windows(detector):
        detector.causal = True
    return detector


def causal_detector_factory(name: str, model_config: dict, config: dict, device: str) -> Callable:
    """A function returning a fresh, unfitted detector of the run's model, set up for causal scoring."""
    from tsad.models.base import build_detector

    def make():
        return prepare_for_nab(build_detector(name, model_config, trainer=config["trainer"], device=device,
                                              normalise=config["dataset"].get("normalise", "standard"),
                                              seed=config["seed"], tta=config.get("tta")))

    return make


def detect_online(make_detector: Callable, values: np.ndarray, retrain_every: int | None = None,
                  name: str = "series") -> FileDetection:
    """Run the NAB protocol on one series [T] or [T, C]: fit on the probationary rows, score causally."""
    values = np.asarray(values, dtype=np.float32)
    values = values[:, None] if values.ndim == 1 else values
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
        detector = make_detector()
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
    return FileDetection(raw, running_rank(raw), fit_seconds, score_seconds, history, len(fit_ends), detector)


def score_rows(detector, values: np.ndarray, first: int, end: int) -> np.ndarray:
    """Scores of rows first..end-1, each computed from rows up to it only."""
    if not uses_windows(detector):
        return detector.score(SeriesSet([values[:end]])).steps[0][first:]
    if not detector.causal:
        raise TypeError("set window detectors up with prepare_for_nab before the NAB protocol scores them")
    context = max(0, first - detector.window + 1)
    steps = detector.score(SeriesSet([values[context:end]])).steps[0]
    return steps[first - context:]


def protocol_settings(dataset: dict) -> dict:
    unknown = sorted(set(dataset) - set(DATASET_KEYS))
    if unknown:
        raise UserError(f"dataset {dataset.get('name', 'nab')!r} has no keys {unknown}; known: {', '.join(DATASET_KEYS)}")
    if dataset.get("level", "point") != "point":
        raise UserError(f"NAB is point-level data; set dataset.level=point, got {dataset['level']!r}")
    retrain_every = dataset.get("retrain_every")
    if retrain_every is not None and (isinstance(retrain_every, bool) or not isinstance(retrain_every, int)
                                      or retrain_every < 1):
        raise UserError(f"dataset.retrain_every must be a positive number of rows or null, got {retrain_every!r}")
    return {"root": dataset.get("root"), "category": dataset.get("category"), "files": dataset.get("files"),
            "retrain_every": retrain_every}


def label_free_threshold(threshold_config: dict, probationary_scores: np.ndarray) -> float:
    """The run's threshold policy applied to the anomaly scores of the probationary rows (no labels)."""
    from tsad.evaluation.thresholds import choose_threshold

    policy = threshold_config["policy"]
    if policy == "val_best_f1":
        raise UserError("threshold=val_best_f1 needs labelled validation data, which NAB does not have; "
                        "use val_percentile, contamination, sigma or fixed")
    if policy == "fixed":
        value = threshold_config["value"]
        if isinstance(value, dict) and "point" not in value:
            raise UserError("threshold=fixed has no value for the point level; add threshold.value.point")
        return float(value["point"] if isinstance(value, dict) else value)
    return choose_threshold(threshold_config, probationary_scores)


def run_nab_protocol(config: dict, run_dir: Path) -> dict:
    """Run `config` under the NAB protocol into `run_dir`; returns the metrics record (see the module doc)."""
    from tsad.evaluation.nab import load_nab_profiles, score_corpus
    from tsad.evaluation.report import evaluate_level
    from tsad.evaluation.thresholds import validate_threshold_config
    from tsad.experiment import count_parameters, headline, resolve_device, seed_everything
    from tsad.models.base import Scores
    from tsad.results import write_history, write_scores

    run_dir = Path(run_dir)
    settings = protocol_settings(dict(config["dataset"]))
    threshold_config = validate_threshold_config(dict(config["threshold"]))
    device = resolve_device(str(config["device"]))
    seed_everything(config["seed"])
    model_config = dict(config["model"])
    detector_name = model_config.pop("name")
    make_detector = causal_detector_factory(detector_name, model_config, config, device)
    make_detector()  # fail on a model the protocol cannot run before loading any data

    corpus = load_nab(settings["root"], settings["category"], settings["files"])
    log.info("NAB protocol: %s on %d file(s) from %s, retrain_every=%s", detector_name, len(corpus.files),
             corpus.folder, settings["retrain_every"])
    detections, history = [], []
    for nab_file in corpus.files:
        detection = detect_online(make_detector, nab_file.values, settings["retrain_every"], nab_file.name)
        detections.append(detection)
        history += [{"file": nab_file.name, **record} for record in detection.history]
        stem = Path(nab_file.name).with_suffix("")
        detection.detector.save(run_dir / "model" / stem)
        write_nab_results_file(run_dir / "nab_results", detector_name, nab_file, detection.anomaly_scores)
        log.info("%s: fit %.1f s, score %.1f s", nab_file.name, detection.fit_seconds, detection.score_seconds)

    scored = {f.name: (f.timestamps, d.anomaly_scores) for f, d in zip(corpus.files, detections)}
    windows = {f.name: f.windows for f in corpus.files}
    profiles = load_nab_profiles(corpus.folder)
    oracle = score_corpus(scored, windows, profiles)  # thresholds optimised on the labels, as NAB's scoreboard
    probationary = np.concatenate([d.anomaly_scores[:f.probation][~np.isnan(d.raw_scores[:f.probation])]
                                   for f, d in zip(corpus.files, detections)])
    threshold = label_free_threshold(threshold_config, probationary)
    label_free = score_corpus(scored, windows, profiles, threshold)

    after_probation = SeriesSet([f.values[f.probation:] for f in corpus.files],
                                step_labels=[f.labels[f.probation:] for f in corpus.files],
                                names=[f.name for f in corpus.files])
    point = evaluate_level(np.concatenate(after_probation.step_labels),
                           np.concatenate([d.anomaly_scores[f.probation:] for f, d in zip(corpus.files, detections)]),
                           at_or_above(threshold), "point", data=after_probation)

    everything = SeriesSet([f.values for f in corpus.files], step_labels=[f.labels for f in corpus.files],
                           timestamps=[f.timestamps for f in corpus.files], names=[f.name for f in corpus.files])
    steps = [d.anomaly_scores for d in detections]
    write_scores(run_dir / "scores", "test", everything, Scores(steps, np.array([s.max() for s in steps])))
    write_history(run_dir / "history.csv", history)
    write_per_file(run_dir / "nab_per_file.csv", corpus.files, {LABEL_FREE: label_free, ORACLE: oracle})
    if config.get("plots", True):
        plot_nab_examples(run_dir / "plots" / "oracle_nab_examples.png", corpus.files, steps, oracle)

    n_windows = sum(len(f.window_rows) for f in corpus.files)
    return {
        "level": "point",
        "metrics": {"point": point},
        "nab_label_free": label_free["scores"],
        "oracle_nab": oracle["scores"],
        "nab_detail": {
            "label_free_threshold": threshold,
            "label_free_raw_scores": label_free["raw_scores"],
            "label_free_counts": label_free["counts"],
            "oracle_thresholds": oracle["thresholds"],
            "oracle_raw_scores": oracle["raw_scores"],
            "oracle_counts": oracle["counts"],
            "score_mapping": "running rank of the detector's raw scores within each file (ties low)",
            "results_dir": str(run_dir / "nab_results" / detector_name),
        },
        "validation": {},
        "headline": {**headline({"point": point}, "point"),
                     "nab_label_free_standard": label_free["scores"].get("standard"),
                     "oracle_nab_standard": oracle["scores"].get("standard")},
        "threshold": {**threshold_config, "source": "probationary rows", "rule": "anomaly score >= value (NAB's rule)",
                      "values": {"point": threshold}},
        "timing": {"fit_seconds": round(sum(d.fit_seconds for d in detections), 3),
                   "score_seconds": round(sum(d.score_seconds for d in detections), 3)},
        "n_parameters": count_parameters(detections[-1].detector),
        "device": device,
        "data": {"n_files": len(corpus.files), "n_rows": int(sum(len(f.values) for f in corpus.files)),
                 "n_probationary_rows": int(sum(f.probation for f in corpus.files)), "n_windows": n_windows,
                 "n_channels": 1, "n_fits": sum(d.n_fits for d in detections),
                 "retrain_every": settings["retrain_every"],
                 "categories": sorted({f.category for f in corpus.files}), "source": str(corpus.folder)},
        "epochs_trained": len([record for record in history if "epoch" in record]),
    }


def at_or_above(threshold: float) -> float:
    """The threshold for metrics that detect scores strictly above it, so that they detect scores >= threshold."""
    return float(np.nextafter(threshold, -np.inf))


def write_nab_results_file(out_dir: Path, detector_name: str, nab_file: NABFile, anomaly_scores) -> Path:
    from tsad.evaluation.nab import write_nab_results

    return write_nab_results(out_dir, detector_name, nab_file.name, nab_file.timestamps, nab_file.values,
                             anomaly_scores, nab_file.labels)


def write_per_file(path: Path, files: list[NABFile], scored_by_source: dict[str, dict]) -> None:
    """One row per threshold source, profile and file: the threshold, raw score, windows detected, row counts.

    scored_by_source maps a source (LABEL_FREE, ORACLE) to score_corpus's result at its thresholds.
    """
    import pandas as pd

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
        detected = (scores >= threshold) & ~probation
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
