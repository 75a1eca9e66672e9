"""Shared test helpers: run tsad-run (in this process, or as a command) and read its run folders."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path

# Test models are tiny: one thread each (here and in every tsad-run the tests start) avoids
# thread oversubscription, which slows small torch ops by an order of magnitude on a busy machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import pytest

TSAD_RUN = str(Path(sys.executable).with_name("tsad-run"))
TSAD_TABLE = str(Path(sys.executable).with_name("tsad-table"))
TSAD_PREDICT = str(Path(sys.executable).with_name("tsad-predict"))
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
# What every tsad-run of the tests sees: Hydra's compact error report, and no library warnings on stderr.
RUN_ENVIRONMENT = {"HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore"}

# A series-level synthetic set small enough for a few-second run.
TINY_SERIES = ["dataset.n_train=40", "dataset.n_val=10", "dataset.n_test=30", "dataset.min_length=40",
               "dataset.max_length=80", "trainer=fast", "plots=false"]


def run_tsad(args: list[str], output_dir: Path, cwd: Path | None = None, check: bool = True,
             timeout: int = 300) -> subprocess.CompletedProcess:
    """`tsad-run ARGS paths.output_dir=OUTPUT_DIR` from `cwd` (default: the output folder), in this process: its
    exit code, stdout and stderr as a command line gets them. Tests of what only a process shows (signals, two
    runs at once, start-up imports) use run_tsad_command. A run in this process takes over its stdout, stderr,
    working folder and signal handlers, so one started from another thread runs as the command."""
    if threading.current_thread() is not threading.main_thread():
        return run_tsad_command(args, output_dir, cwd, check, timeout)
    from tsad.cli import main

    result = run_in_process(main, TSAD_RUN, [*args, f"paths.output_dir={output_dir}"], cwd or output_dir, timeout)
    return checked(result, check)


def run_tsad_command(args: list[str], output_dir: Path, cwd: Path | None = None, check: bool = True,
                     timeout: int = 300) -> subprocess.CompletedProcess:
    """The same run as run_tsad, as the `tsad-run` command in a process of its own."""
    result = subprocess.run([TSAD_RUN, *args, f"paths.output_dir={output_dir}"], cwd=cwd or output_dir,
                            capture_output=True, text=True, timeout=timeout, env={**os.environ, **RUN_ENVIRONMENT})
    return checked(result, check)


def run_tsad_table(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """`tsad-table ARGS` from `cwd`, in this process."""
    from tsad.table import main

    return checked(run_in_process(main, TSAD_TABLE, args, cwd, timeout=120), check)


def run_tsad_predict(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`tsad-predict ARGS` from `cwd`, in this process, with `stdin` as its standard input (empty when None)."""
    from tsad.predict import main

    saved = sys.stdin
    sys.stdin = io.StringIO(stdin or "")
    try:
        return run_in_process(main, TSAD_PREDICT, args, cwd, timeout=300)
    finally:
        sys.stdin = saved


def load_script(name: str):
    """scripts/<name>.py as a module (the scripts are not a package; they may import each other)."""
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nab_run(root: Path, output_dir: Path, *args: str) -> Path:
    """One tsad-run on the NAB-format corpus at `root` (args: the preset or dataset, the model, overrides) into a
    fresh `output_dir`; returns its run folder."""
    output_dir.mkdir(parents=True, exist_ok=True)
    run_tsad([f"dataset.root={root}", *args], output_dir)
    (folder,) = run_folders(output_dir)
    return folder


def checked(result: subprocess.CompletedProcess, check: bool) -> subprocess.CompletedProcess:
    if check and result.returncode != 0:
        raise AssertionError(f"{Path(result.args[0]).name} {' '.join(result.args[1:])} failed ({result.returncode}):"
                             f"\n{result.stdout}\n{result.stderr}")
    return result


def run_in_process(main, program: str, args: list[str], cwd: Path, timeout: int) -> subprocess.CompletedProcess:
    """Call a console script's `main` as its command line would: sys.argv, working folder and RUN_ENVIRONMENT set
    for the call; stdout and stderr captured at the file descriptors (so what C code, child processes and logging
    handlers write is caught too); the exit code from SystemExit, and an escaping exception printed as a traceback
    with code 1, as Python does. Hydra's global state, logging, warning filters and torch's deterministic mode are
    put back afterwards, so that runs do not leak into each other or into the test."""
    from hydra.core.global_hydra import GlobalHydra

    argv = [program, *map(str, args)]
    code = 0
    with captured_output() as output, restored_process_state(argv, cwd), alarm_after(timeout) as expired:
        GlobalHydra.instance().clear()
        try:
            main()
        except SystemExit as stop:
            code = exit_status(stop.code)
        except BaseException:  # what the interpreter does with an exception that leaves the script
            traceback.print_exc()
            code = 1
        finally:
            GlobalHydra.instance().clear()
    if expired:
        raise subprocess.TimeoutExpired(argv, timeout, output.stdout, output.stderr)
    return subprocess.CompletedProcess(argv, code, output.stdout, output.stderr)


def exit_status(code) -> int:
    """The status a process ends with after sys.exit(code); a message is printed to stderr first."""
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


class Output:
    stdout = ""
    stderr = ""


@contextlib.contextmanager
def captured_output():
    """What is written to file descriptors 1 and 2 inside, Python's sys.stdout/sys.stderr writing straight to them
    (unbuffered, so Python's and C's writes stay in order)."""
    output = Output()
    saved_streams = sys.stdout, sys.stderr
    for stream in saved_streams:
        stream.flush()
    files = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]
    saved_descriptors = [os.dup(1), os.dup(2)]
    try:
        for descriptor, file in zip((1, 2), files):
            os.dup2(file.fileno(), descriptor)
        sys.stdout, sys.stderr = (io.TextIOWrapper(io.FileIO(descriptor, "w", closefd=False), encoding="utf-8",
                                                   errors="backslashreplace", write_through=True)
                                  for descriptor in (1, 2))
        yield output
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        sys.stdout, sys.stderr = saved_streams
        for descriptor, saved in zip((1, 2), saved_descriptors):
            os.dup2(saved, descriptor)
            os.close(saved)
        texts = []
        for file in files:
            file.seek(0)
            texts.append(file.read().decode("utf-8", errors="backslashreplace"))
            file.close()
        output.stdout, output.stderr = texts


@contextlib.contextmanager
def restored_process_state(argv: list[str], cwd: Path):
    """sys.argv, the working folder and RUN_ENVIRONMENT set inside; those, the environment, the warning filters,
    logging (the handlers Hydra installs are closed) and torch's deterministic mode put back afterwards."""
    saved_argv, saved_cwd, saved_environment = sys.argv, os.getcwd(), dict(os.environ)
    saved_deterministic = deterministic_mode()
    loggers = logger_states()
    sys.argv = argv
    os.chdir(cwd)
    os.environ.update(RUN_ENVIRONMENT)
    try:
        with warnings_ignored():
            yield
    finally:
        restore_loggers(loggers)
        close_figures()
        restore_deterministic_mode(saved_deterministic)
        for key in set(os.environ) - set(saved_environment):
            del os.environ[key]
        os.environ.update(saved_environment)
        os.chdir(saved_cwd)
        sys.argv = saved_argv


@contextlib.contextmanager
def warnings_ignored():
    """PYTHONWARNINGS=ignore, as a process started with it has."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def alarm_after(seconds: int):
    """Interrupt the code inside after `seconds`; the list yielded is not empty then."""
    expired = []

    def interrupt(signum, frame):
        expired.append(seconds)
        raise subprocess.TimeoutExpired("tsad", seconds)

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(seconds)
    try:
        yield expired
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def logger_states() -> dict:
    loggers = [logging.getLogger(), *(logger for logger in logging.Logger.manager.loggerDict.values()
                                      if isinstance(logger, logging.Logger))]
    return {logger: (list(logger.handlers), logger.level, logger.propagate, logger.disabled) for logger in loggers}


def restore_loggers(saved: dict) -> None:
    """The root logger back to its handlers (those Hydra's logging config installed are closed: run.log's among
    them) and every logger to its level and switches; handlers a library gave its own logger stay, as the library
    adds them once."""
    root = logging.getLogger()
    handlers = saved[root][0]
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    for logger, (_, level, propagate, disabled) in saved.items():
        logger.setLevel(level)
        logger.propagate, logger.disabled = propagate, disabled


def close_figures() -> None:
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def deterministic_mode() -> tuple[bool, bool] | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    return torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()


def restore_deterministic_mode(saved: tuple[bool, bool] | None) -> None:
    torch = sys.modules.get("torch")
    if torch is not None:
        enabled, warn_only = saved or (False, False)
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def reload_and_compare(detector, data, directory: Path):
    """Save a fitted detector, load it back, check it scores `data` the same (to float32 rounding); return it."""
    import numpy as np

    from tsad.models.base import Detector

    before = detector.score(data)
    detector.save(directory)
    loaded = Detector.load(directory)
    after = loaded.score(data)
    np.testing.assert_allclose(before.series, after.series, rtol=1e-6, atol=1e-6)
    for a, b in zip(before.steps, after.steps):
        assert np.isfinite(a).all()
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    return loaded


def score_alone_and_padded(module, short, long):
    """Scores of `short` [T, C] alone and of the batch [long, short], where `short` is padded to len(long):
    (alone_step, alone_series, mixed_step, mixed_series), for checks that padding changes nothing."""
    import numpy as np

    from tsad.data.batches import pad_batch

    alone_step, alone_series = module.score(pad_batch([short], np.array([-1])))
    mixed_step, mixed_series = module.score(pad_batch([long, short], np.array([-1, -1])))
    return alone_step, alone_series, mixed_step, mixed_series


def run_folders(output_dir: Path) -> list[Path]:
    return sorted(p.parent for p in Path(output_dir).rglob("metrics.json"))


def read_metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def run_model_on_tiny_series(model: str, output_dir: Path, *overrides: str) -> tuple[Path, dict]:
    """tsad-run one model on TINY_SERIES; check it finished and scored both label levels."""
    run_tsad([f"model={model}", *TINY_SERIES, *overrides], output_dir)
    folder = run_folders(output_dir)[0]
    record = read_metrics(folder)
    assert record["status"] == "OK" and record["model"] == model
    for level in ("series", "point"):
        assert 0.0 <= record["metrics"][level]["roc_auc"] <= 1.0
    return folder, record


@pytest.fixture
def tiny_series() -> list[str]:
    return list(TINY_SERIES)


def build_csv(**settings):
    """dataset=csv with these settings, built."""
    from tsad.data.registry import dataset_settings

    return dataset_settings({"family": "csv", **settings}).build()


def write_csv(frame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def sensor_frame(rows: int = 300, seed: int = 0, anomalies=((250, 260),)):
    """A CSV-like frame: hourly timestamps, two numeric channels (an anomaly lifts `b` by 2), a text column, labels."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    label = np.zeros(rows, dtype=int)
    for start, stop in anomalies:
        label[start:stop] = 1
    return pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=rows, freq="h").astype(str),
                         "a": np.sin(t / 5) + rng.normal(0, 0.1, rows), "b": np.cos(t / 7) + 2 * label,
                         "note": ["x"] * rows, "label": label})


# -- a small NAB-format corpus -------------------------------------------------------------------

def stamps(n_rows: int, start: str = "2014-03-01 00:00:00") -> list[str]:
    return list(pd.date_range(start, periods=n_rows, freq="5min").strftime("%Y-%m-%d %H:%M:%S"))


def write_nab_folder(root: Path, series: dict[str, tuple[list[str], np.ndarray]],
                     windows: dict[str, list[tuple[str, str]]]) -> Path:
    """data/<category>/<name>.csv (timestamp,value) and labels/combined_windows.json, as NAB lays them out."""
    for name, (timestamps, values) in series.items():
        path = root / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"timestamp": timestamps, "value": values}).to_csv(path, index=False)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    written = {name: [[f"{start}.000000", f"{end}.000000"] for start, end in file_windows]
               for name, file_windows in windows.items()}
    (root / "labels" / "combined_windows.json").write_text(json.dumps(written, indent=4))
    return root


@pytest.fixture(scope="module")
def nab_mini(tmp_path_factory) -> Path:
    """Three files in two categories: a spike, repeated and backward timestamps, and no anomaly at all."""
    rng = np.random.default_rng(0)
    rows = np.arange(600)
    spike = np.sin(rows * 2 * np.pi / 48) + 0.1 * rng.normal(size=600)
    spike[450:455] += 4.0
    spike_stamps = stamps(600)

    glitch = np.cos(np.arange(400) * 2 * np.pi / 30) + 0.1 * rng.normal(size=400)
    glitch[310:316] = 3.0
    glitch_stamps = stamps(400)
    glitch_stamps[101] = glitch_stamps[100]  # a repeated timestamp
    glitch_stamps[200:212] = stamps(12, "2014-03-01 15:00:00")  # time goes back an hour at row 200

    flat_stamps = stamps(300)
    series = {
        "synthA/sine_spike.csv": (spike_stamps, np.round(spike, 4)),
        "synthA/cos_glitch.csv": (glitch_stamps, np.round(glitch, 4)),
        "synthB/exchange-2_flat.csv": (flat_stamps, np.full(300, 7.0)),
    }
    windows = {
        "synthA/sine_spike.csv": [(spike_stamps[430], spike_stamps[470])],
        # 15:00 occurs at rows 180 and 200: the window starts at the first.
        "synthA/cos_glitch.csv": [(glitch_stamps[300], glitch_stamps[330])],
        "synthB/exchange-2_flat.csv": [],
    }
    return write_nab_folder(tmp_path_factory.mktemp("nab_mini"), series, windows)
