"""What a trained detector expects of new data, saved beside it as model/inputs.json.

The run writes it (tsad/protocols/offline.py) and tsad-predict reads it: the label level of the run, its
threshold per level (an alarm is score > threshold, the rule of the metrics), the post-processing its scores
went through, the channel names in training order (CSV value columns; ch0..ch{C-1} for generated data), the
timestamp column, and how the training CSV files were read. New files are matched to the channels by column
name, in any column order.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tsad.data.csv import Table, build, table_from_frame
from tsad.data.series import DatasetSplits
from tsad.errors import UserError
from tsad.postprocess import PostProcess

INPUTS_FILE = "inputs.json"
# dataset=csv settings that say how a file is read (not how it is split); new files are read with the same ones.
READ_OPTIONS = ("separator", "nan_policy", "timestamp_column", "label_column", "value_columns")


def csv_defaults() -> dict:
    """The reading settings of dataset=csv at their defaults (from the signature of tsad.data.csv.build)."""
    parameters = inspect.signature(build).parameters
    return {key: parameters[key].default for key in READ_OPTIONS}


@dataclass
class ModelInputs:
    """What model/inputs.json holds; `dataset` is the name of the training data set."""

    level: str
    thresholds: dict[str, float]
    channels: list[str]
    timestamp_column: str | None = None
    csv_options: dict = field(default_factory=dict)
    dataset: str = ""
    postprocess: dict = field(default_factory=dict)  # the run's postprocess settings; {} = none

    @classmethod
    def of(cls, data: DatasetSplits, thresholds: dict[str, float], postprocess: PostProcess) -> ModelInputs:
        return cls(data.level, dict(thresholds), list(data.channels), data.timestamp_column, dict(data.csv_options),
                   data.name, asdict(postprocess) if postprocess.active else {})

    def save(self, directory: Path) -> None:
        Path(directory, INPUTS_FILE).write_text(json.dumps({**asdict(self), "alarm_rule": "score > threshold"},
                                                           indent=2))

    @classmethod
    def load(cls, directory: Path) -> ModelInputs:
        path = Path(directory, INPUTS_FILE)
        if not path.is_file():
            raise UserError(f"{path} is missing: the run was made before runs saved what their model expects; "
                            f"train it again with tsad-run")
        saved = json.loads(path.read_text())
        return cls(**{key: saved[key] for key in saved if key in cls.__dataclass_fields__})

    def read_options(self) -> dict:
        """How to read a new file: as the training files were, else with dataset=csv's defaults."""
        return {**csv_defaults(), **{k: v for k, v in self.csv_options.items() if k in READ_OPTIONS}}

    def threshold(self, level: str) -> float:
        if level not in self.thresholds:
            raise UserError(f"the run has no {level}-level threshold (it has: {', '.join(self.thresholds) or 'none'}); "
                            f"its data or threshold policy set none for that level")
        return float(self.thresholds[level])

    def matching_table(self, frame, source: Path, options: dict) -> Table:
        """The rows of `frame` (read from `source`) with the trained channels as values, in training order.

        A trained column that is missing or not numeric, or a numeric column the model was not trained on, is
        an error; a run that listed its value columns (dataset.value_columns) ignores other columns, as in training.
        """
        trained = ", ".join(self.channels)
        missing = [c for c in self.channels if c not in frame.columns]
        if missing:
            raise UserError(f"{source}: column {missing[0]!r} is missing; the model was trained on "
                            f"{len(self.channels)} columns ({trained}) and the file has "
                            f"{', '.join(map(str, frame.columns))}; add or rename the column")
        listed = self.channels if options.get("value_columns") is not None else None
        table = table_from_frame(frame, source, options["timestamp_column"], listed, options["label_column"],
                                 options["nan_policy"])
        extra = [c for c in table.columns if c not in self.channels]
        if extra:
            raise UserError(f"{source}: numeric column {extra[0]!r} is not one the model was trained on ({trained}); "
                            f"remove it from the file")
        not_numeric = [c for c in self.channels if c not in table.columns]
        if not_numeric:
            raise UserError(f"{source}: column {not_numeric[0]!r} is not numeric (or is read as the timestamp or "
                            f"label column); the model was trained on its numbers")
        table.values = table.values[:, [table.columns.index(c) for c in self.channels]]
        table.columns = list(self.channels)
        return table
