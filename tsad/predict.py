"""`tsad-predict run=RUN_DIR input=PATH`: score new CSV data with a finished run's detector, without retraining.

Keys (key=value, as for tsad-run):
  run=RUN_DIR    a finished run folder (of tsad-run or of a sweep); its model/ holds the detector with its
                 normaliser, and inputs.json with the threshold per level and the trained column names
  input=PATH     a CSV file, a folder of CSV files (one series each), or - to stream rows from standard input
  out=FOLDER     the prediction folder to write (default outputs/predictions/<date>/<time>_<run folder name>)
  device=auto    auto | cpu | cuda | cuda:N
  dataset.separator / nan_policy / timestamp_column / label_column
                 read the input otherwise than the run read its training files (those settings by default)

Columns are matched by name to those the model was trained on, in any order. The prediction folder holds
predictions.csv (point-level runs: series, row, timestamp when the input has one, score, alarm; series-level
runs: one row per series), prediction.json (source run, threshold, counts) and plots/predictions.png.
An alarm is score > threshold, the run's threshold of its level. With input=- rows are scored as they arrive
(tsad/predict_stream.py).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path

from tsad.errors import UserError
from tsad.results import removed_when_disk_full
from tsad.run_folder import RunFolder

USAGE = "tsad-predict run=RUN_DIR input=FILE_OR_FOLDER_OR_- [out=FOLDER] [device=auto]"
KEYS = ("run", "input", "out", "device")
READ_KEYS = ("separator", "nan_policy", "timestamp_column", "label_column")  # given as dataset.<key>=
PREDICTIONS_ROOT = Path("outputs") / "predictions"
PLOTTED_SERIES = 4
PLOTS_DIR = "plots"  # in the prediction folder (not a run folder)


def parse_arguments(arguments: list[str]) -> dict:
    """{key: value} of key=value arguments, checked; dataset.<key>=null gives None."""
    settings = {"device": "auto"}
    known = (*KEYS, *(f"dataset.{key}" for key in READ_KEYS))
    for argument in arguments:
        key, equals, value = argument.partition("=")
        if not equals:
            raise UserError(f"{argument!r} is not key=value; usage: {USAGE}")
        if key not in known:
            raise UserError(f"unknown key {key!r}; known: {', '.join(known)}")
        settings[key] = None if key.startswith("dataset.") and value == "null" else value
    for key in ("run", "input"):
        if not settings.get(key):
            raise UserError(f"{key}= is missing; usage: {USAGE}")
    return settings


def model_folder(run: str) -> Path:
    """The model/ folder of the run folder `run`; a one-line error for anything else."""
    from tsad.models.base import DETECTOR_FILE
    from tsad.models.state_files import damaged

    run_dir = Path(run).expanduser()
    if not run_dir.is_dir():
        raise UserError(f"run={run} is not a folder; give a run folder of tsad-run (outputs/runs/<date>/<time>_...)")
    model = RunFolder(run_dir).model
    if (model / DETECTOR_FILE).is_file():
        return model
    if any(model.glob("*/detector.json")):
        raise UserError(f"run={run} keeps one detector per file (the NAB protocol trains one per series); "
                        f"tsad-predict needs a run of the offline protocol")
    if model.is_dir() and any(path.is_file() for path in model.iterdir()):
        raise damaged(model / DETECTOR_FILE, "is missing")
    jobs = sorted(path for path in run_dir.iterdir() if (RunFolder(path).model / "detector.json").is_file())
    if jobs:
        raise UserError(f"run={run} is a sweep folder of {len(jobs)} runs; give one of them, e.g. run={jobs[0]}")
    raise UserError(f"run={run} has no saved model (model/detector.json); give the folder of a finished run")


def read_options(inputs, settings: dict) -> dict:
    """How to read the input: as the run read its training files, but for the dataset.<key>= arguments."""
    from tsad.data.csv import NAN_POLICIES
    options = {**inputs.read_options(), **{key: settings[f"dataset.{key}"] for key in READ_KEYS
                                          if f"dataset.{key}" in settings}}
    if options["nan_policy"] not in NAN_POLICIES:
        raise UserError(f"dataset.nan_policy must be one of {', '.join(NAN_POLICIES)}, got {options['nan_policy']!r}")
    if not options["separator"]:
        raise UserError("dataset.separator is empty; give the input's separator, e.g. dataset.separator=';'")
    return options


def output_folder(out: str | None, run_dir: Path) -> Path:
    """The new prediction folder: `out`, or a timestamped one under outputs/predictions; never inside the run."""
    if out is None:
        now = datetime.now()
        folder = PREDICTIONS_ROOT / now.strftime("%Y-%m-%d") / f"{now.strftime('%H-%M-%S-%f')}_{run_dir.resolve().name}"
    else:
        folder = Path(out).expanduser()
    if folder.resolve().is_relative_to(run_dir.resolve()):
        raise UserError(f"out={folder} lies inside the run folder {run_dir}, which predictions never change; "
                        f"give out= a folder outside it")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UserError(f"out={folder} already exists and is not an empty folder; give out= a new folder")
    return folder


def input_files(path: str) -> list[Path]:
    source = Path(path).expanduser()
    if source.is_file():
        return [source]
    if source.is_dir():
        files = sorted(source.glob("*.csv"))
        if not files:
            raise UserError(f"input={path} holds no .csv files; give a CSV file or a folder of CSV files")
        return files
    raise UserError(f"input={path} does not exist; give a CSV file, a folder of CSV files, or - for standard input")


def read_tables(files: list[Path], inputs, options: dict) -> list:
    """The input files (one series each) read like the training files, with the trained columns in order."""
    from tsad.data.csv import fill_gaps, read_frame

    tables = []
    for file in files:
        table = inputs.matching_table(read_frame(file, options["separator"]), file, options)
        table.values = fill_gaps(table.values, table.columns, str(file))  # NaN gaps under nan_policy=interpolate
        tables.append(table)
    return tables


def series_of(tables: list, detector):
    """The tables as one SeriesSet, each long enough for the detector's window."""
    from tsad.data.series import SeriesSet
    from tsad.models.window_scoring import WindowScorer

    for table in tables:
        if isinstance(detector, WindowScorer) and len(table.values) < detector.window:
            raise UserError(f"{table.path}: {len(table.values)} rows, fewer than the model's window "
                            f"(model.window={detector.window}); give series of at least {detector.window} rows")
    timestamps = None if any(t.timestamps is None for t in tables) else [t.timestamps for t in tables]
    return SeriesSet([t.values for t in tables], timestamps=timestamps, names=[t.name for t in tables],
                     rows=[t.rows for t in tables])


def predictions_frame(data, scores, level: str, pipeline):
    """predictions.csv: one row per step (point level) or per series (series level), with score and alarm."""
    import numpy as np
    import pandas as pd


    if level == "series":
        frame = pd.DataFrame({"series": data.names, "score": scores.series})
    else:
        frame = pd.DataFrame({"series": np.repeat(data.names, data.lengths), "row": np.concatenate(data.rows)})
        if data.timestamps is not None:
            frame["timestamp"] = np.concatenate(data.timestamps)
        frame["score"] = np.concatenate(scores.steps)
    frame["alarm"] = pipeline.alarms(frame["score"].to_numpy(), level).astype(int)
    return frame


def plot_predictions(path: Path, data, scores, level: str, threshold: float, inputs) -> None:
    """The first series of the input: their first channels with alarms shaded, and (point level) the step scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tsad.evaluation.alarms import ALARM_RULE, alarms
    from tsad.plotting import ANOMALY_COLOR, THRESHOLD_COLOR, save, shade
    from tsad.plotting.style import format_time_axis, time_axis

    shown = min(len(data), PLOTTED_SERIES)
    rows = 1 if level == "series" else 2
    figure, axes = plt.subplots(rows, shown, figsize=(max(7.0, 4.5 * shown), 2.4 * rows + 0.8), squeeze=False,
                                sharex="col")
    for index in range(shown):
        values, steps, signal_axis = data.values[index], scores.steps[index], axes[0, index]
        x, x_label = time_axis(data.timestamps[index] if data.timestamps else None, len(values),
                               inputs.timestamp_column)
        for channel in range(min(3, values.shape[1])):
            signal_axis.plot(x, values[:, channel], lw=0.8, label=inputs.channels[channel])
        format_time_axis(axes[-1, index], x)
        axes[-1, index].set_xlabel(x_label)
        title = data.names[index]
        if level == "series":
            alarm = alarms(scores.series[index], threshold)
            title += f": score {scores.series[index]:.3g}" + (" ALARM" if alarm else "")
            signal_axis.set_title(title, fontsize=9, color=ANOMALY_COLOR if alarm else "black")
            continue
        signal_axis.set_title(title, fontsize=9)
        shade(signal_axis, alarms(steps, threshold), ANOMALY_COLOR, "alarm", x)
        axes[1, index].plot(x, steps, color="black", lw=0.8)
        axes[1, index].axhline(threshold, color=THRESHOLD_COLOR, ls="--", lw=0.8)
        axes[1, index].set(ylabel="score")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    below = "" if level == "series" else f"\nalarms ({ALARM_RULE}) shaded; below: step scores and threshold"
    figure.suptitle(f"{shown} of {len(data)} series (first channels){below}", fontsize=10)
    save(figure, path)



def predict(settings: dict) -> None:
    """Check everything, then score the input: a prediction folder, or (input=-) lines on standard output."""
    import time

    import numpy as np

    from tsad.evaluation.alarms import ALARM_RULE
    from tsad.pipeline import Pipeline
    from tsad.runtime import resolve_device

    model = model_folder(settings["run"])
    run_dir = model.parent
    device = resolve_device(settings["device"])
    pipeline, inputs = Pipeline.load(model, device, causal=settings["input"] == "-")
    options = read_options(inputs, settings)
    postprocess = pipeline.postprocess
    if settings["input"] == "-":
        if postprocess.active:
            raise UserError(f"the run post-processes its scores (postprocess={postprocess.name}), whose learning "
                            f"phase is a share of each series' length, which a stream does not know: give whole "
                            f"files with input=FILE_OR_FOLDER")
        if settings.get("out") is not None:
            raise UserError("out= has no use with input=-, which writes score,alarm lines to standard output")
        from tsad.predict_stream import stream

        stream(pipeline, inputs, options, sys.stdin, sys.stdout)
        return
    threshold = pipeline.threshold(inputs.level)
    folder = output_folder(settings.get("out"), run_dir)
    tables = read_tables(input_files(settings["input"]), inputs, options)
    detector = pipeline.detector
    data = series_of(tables, detector)

    started = time.perf_counter()
    scores = pipeline.score(data)
    seconds = time.perf_counter() - started
    frame = predictions_frame(data, scores, inputs.level, pipeline)
    summary = {"run": str(run_dir.resolve()), "model": detector.name, "dataset": inputs.dataset,
               "level": inputs.level, "threshold": threshold, "alarm_rule": ALARM_RULE,
               "input": str(Path(settings["input"]).resolve()), "n_series": len(data),
               "n_rows": int(data.lengths.sum()), "n_alarms": int(frame["alarm"].sum()),
               "n_series_with_alarms": int(frame.groupby("series")["alarm"].max().sum()),
               "device": device, "score_seconds": round(seconds, 3), "created": datetime.now().isoformat()}
    with removed_when_disk_full(folder, "out= folder"):
        (folder / PLOTS_DIR).mkdir(parents=True, exist_ok=True)
        frame.to_csv(folder / "predictions.csv", index=False)
        (folder / "prediction.json").write_text(json.dumps(summary, indent=2))
        plot_predictions(folder / PLOTS_DIR / "predictions.png", data, scores, inputs.level, threshold, inputs)
    print(f"prediction folder: {folder}")
    print(f"{summary['n_rows']} rows of {len(data)} series scored by {detector.name}: {summary['n_alarms']} alarms "
          f"({inputs.level} level, score > {threshold:.6g}); max score {np.nanmax(frame['score']):.6g}")


def main(arguments: list[str] | None = None) -> None:
    arguments = sys.argv[1:] if arguments is None else arguments
    try:
        if any(argument in ("-h", "--help") for argument in arguments):
            print(__doc__)
        else:
            predict(parse_arguments(arguments))
    except UserError as error:
        print(f"tsad-predict: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("tsad-predict: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # the reader of a stream went away (e.g. `| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


if __name__ == "__main__":
    main()
