"""A scoring pipeline: a detector, the causal post-processing of its step scores and one threshold per label level.

What a run fits and saves into model/, and what tsad-predict and the stream load: fit, score (post-processed),
thresholds chosen by the run's policy on non-test scores, alarms (tsad/evaluation/alarms.py's rule), save and
load. model/ holds the detector's own files (detector.json and its state) and inputs.json: the label level, the
thresholds, the post-processing, and what the detector expects of new data (tsad/model_inputs.py).

Under an online protocol (NAB) step scores are first mapped to their running rank within the series, with or
without post-processing (`ranks=True`); offline runs map them so only when they are post-processed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tsad.cores import rebalance
from tsad.data.nab_format import probationary_length
from tsad.data.series import SeriesSet
from tsad.errors import UserError
from tsad.evaluation.alarms import ALARM_RULE, alarms
from tsad.evaluation.thresholds import ThresholdPolicy
from tsad.model_inputs import INPUTS_FILE, ModelInputs
from tsad.models.base import Detector, Scores
from tsad.models.state_files import rethrown_for
from tsad.postprocess import PostProcess, running_rank


@dataclass
class Pipeline:
    detector: Detector
    postprocess: PostProcess = field(default_factory=PostProcess)
    thresholds: dict[str, float] = field(default_factory=dict)
    ranks: bool = False  # map step scores to their running rank even without post-processing (online protocols)

    def fit(self, train: SeriesSet, val: SeriesSet | None = None) -> Pipeline:
        rebalance()
        self.detector.fit(train, val)
        return self

    def score(self, data: SeriesSet) -> Scores:
        """Post-processed step scores and the detector's series scores of `data`."""
        rebalance()
        return self.processed(data, self.detector.score(data))

    def score_train(self, train: SeriesSet) -> Scores:
        """Scores of the data the detector was fitted on (out of sample where the detector memorises it)."""
        return self.processed(train, self.detector.score_train(train))

    def processed(self, data: SeriesSet, raw: Scores) -> Scores:
        if not (self.ranks or self.postprocess.active):
            return raw
        return Scores([self.step_scores(values, steps) for values, steps in zip(data.values, raw.steps)], raw.series)

    def step_scores(self, values: np.ndarray, raw_steps: np.ndarray) -> np.ndarray:
        """One series' step scores [T] from its values [T, C] and the detector's raw step scores [T] (NaN = none)."""
        if not (self.ranks or self.postprocess.active):
            return raw_steps
        return self.postprocess.apply(values, raw_steps, running_rank(raw_steps), probationary_length(len(raw_steps)))

    def choose_thresholds(self, policy: ThresholdPolicy, split: SeriesSet, scores: Scores,
                          levels: list[str]) -> dict[str, float]:
        """One threshold per level from the scores of the policy's reference split (never test)."""
        self.thresholds = {level: policy.threshold(split, scores, level) for level in levels}
        return self.thresholds

    def alarms(self, scores, level: str) -> np.ndarray:
        """Where scores of `level` (series scores, or step scores) raise an alarm under the level's threshold."""
        return alarms(scores, self.threshold(level))

    def threshold(self, level: str) -> float:
        if level not in self.thresholds:
            raise UserError(f"the run has no {level}-level threshold (it has: {', '.join(self.thresholds) or 'none'}); "
                            f"its data or threshold policy set none for that level")
        return float(self.thresholds[level])

    def save(self, directory: Path, inputs: ModelInputs) -> None:
        """The detector's files and inputs.json (what new data must look like, thresholds, post-processing)."""
        self.detector.save(directory)
        record = {"level": inputs.level, "thresholds": dict(self.thresholds), "channels": list(inputs.channels),
                  "timestamp_column": inputs.timestamp_column, "csv_options": dict(inputs.csv_options),
                  "dataset": inputs.dataset, "postprocess": asdict(self.postprocess) if self.postprocess.active else {},
                  "alarm_rule": ALARM_RULE}
        Path(directory, INPUTS_FILE).write_text(json.dumps(record, indent=2))

    @classmethod
    def load(cls, directory: Path, device: str = "cpu", causal: bool = False) -> tuple[Pipeline, ModelInputs]:
        """The saved pipeline, its detector on `device`, and what it expects of new data."""
        inputs, saved = ModelInputs.load(directory)
        inputs_file = Path(directory, INPUTS_FILE)
        try:
            postprocess = PostProcess.parse(saved.get("postprocess") or {}, "postprocess")
        except UserError as error:
            raise rethrown_for(inputs_file, error) from None
        detector = Detector.load(directory, device, causal=causal, channels_beside=(inputs_file, len(inputs.channels)))
        return cls(detector, postprocess, dict(saved["thresholds"])), inputs
