"""What a trained detector expects of new data, saved in model/inputs.json beside the pipeline's thresholds and
post-processing (tsad/pipeline.py writes and reads the file).

The label level of the run, the channel names in training order (CSV value columns; ch0..ch{C-1} for generated
data), the timestamp column, and how the training CSV files were read. New files are matched to the channels by
column name, in any column order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tsad.data.csv import CsvSettings, Table, table_from_frame
from tsad.data.registry import LEVELS
from tsad.data.series import DatasetSplits
from tsad.errors import UserError
from tsad.models.state_files import damaged, read_json_object, required_entries

INPUTS_FILE = "inputs.json"
# dataset=csv settings that say how a file is read (not how it is split); new files are read with the same ones.
# entries of inputs.json that runs of older versions may lack, and their types
OPTIONAL_ENTRIES = {"timestamp_column": (str, type(None)), "csv_options": dict, "dataset": str, "postprocess": dict}
READ_OPTIONS = ("separator", "nan_policy", "timestamp_column", "label_column", "value_columns")


def csv_defaults() -> dict:
    """The reading settings of dataset=csv at their defaults (those of its settings class)."""
    defaults = CsvSettings()
    return {key: getattr(defaults, key) for key in READ_OPTIONS}


@dataclass
class ModelInputs:
    """What model/inputs.json holds; `dataset` is the name of the training data set."""

    level: str
    channels: list[str]
    timestamp_column: str | None = None
    csv_options: dict = field(default_factory=dict)
    dataset: str = ""

    @classmethod
    def of(cls, data: DatasetSplits) -> ModelInputs:
        return cls(data.level, list(data.channels), data.timestamp_column, dict(data.csv_options), data.name)

    @classmethod
    def load(cls, directory: Path) -> tuple[ModelInputs, dict]:
        """The inputs a saved model expects, and the whole of inputs.json."""
        path = Path(directory, INPUTS_FILE)
        if not path.exists():
            raise UserError(f"{path} is missing: the run was made before runs saved what their model expects; "
                            f"train it again with tsad-run")
        saved = read_json_object(path)
        required_entries(path, saved, {"level": str, "thresholds": dict, "channels": list})
        required_entries(path, saved, {key: kind for key, kind in OPTIONAL_ENTRIES.items() if key in saved})
        if saved["level"] not in LEVELS:
            raise damaged(path, f"has level={saved['level']!r}, not one of {', '.join(LEVELS)}")
        if not saved["channels"] or not all(isinstance(channel, str) for channel in saved["channels"]):
            raise damaged(path, f"has channels={saved['channels']!r}, not a list of column names")
        for level, threshold in saved["thresholds"].items():
            if level not in LEVELS or isinstance(threshold, bool) or not isinstance(threshold, int | float):
                raise damaged(path, f"has thresholds {level}={threshold!r}, not a number of level "
                                    f"{' or '.join(LEVELS)}")
        return cls(**{key: saved[key] for key in saved if key in cls.__dataclass_fields__}), saved

    def read_options(self) -> dict:
        """How to read a new file: as the training files were, else with dataset=csv's defaults."""
        return {**csv_defaults(), **{k: v for k, v in self.csv_options.items() if k in READ_OPTIONS}}

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
