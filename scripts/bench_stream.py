"""Streaming speed of `tsad-predict input=-`: rows per second and per-row latency, per model.

    python scripts/bench_stream.py
    python scripts/bench_stream.py pca lstm_vae --rows 2000 --device cuda

Each model is trained once with `tsad-run dataset=synthetic_points trainer=fast` into a temporary folder, then
--rows rows of random values are streamed through the same code as `tsad-predict run=... input=-`
(tsad.predict_stream.stream, in this process, without the start-up of a new process). A row's latency runs
from the moment the stream hands its line over to the moment its `row,score,alarm` line is written: parsing,
the ring buffer, scoring the window ending at the row, and formatting. Models that cannot stream (those
without windows) print why. Set OMP_NUM_THREADS=1 for the single-row latencies of small models on a CPU.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = ("zscore", "pca", "lstm_vae", "patchtrad")


class TimedLines(io.StringIO):
    """Standard input for the stream: its lines, noting when each one is handed over."""

    def __init__(self, text: str):
        super().__init__(text)
        self.handed: list[float] = []

    def readline(self, *args) -> str:
        line = super().readline(*args)
        self.handed.append(time.perf_counter())
        return line


class TimedSink(io.StringIO):
    """Standard output for the stream: notes when each line is written."""

    def __init__(self):
        super().__init__()
        self.written: list[float] = []

    def write(self, text: str) -> int:
        self.written.append(time.perf_counter())
        return super().write(text)


def train(model: str, folder: Path) -> Path:
    tsad_run = Path(sys.executable).with_name("tsad-run")
    subprocess.run([str(tsad_run), f"model={model}", "dataset=synthetic_points", "trainer=fast", "plots=false",
                    f"paths.output_dir={folder}"], check=True, capture_output=True, text=True)
    return next(folder.rglob("metrics.json")).parent


def bench(run: Path, rows: int, device: str) -> dict:
    from tsad.errors import UserError
    from tsad.pipeline import Pipeline
    from tsad.predict_stream import stream

    pipeline, inputs = Pipeline.load(run / "model", device, causal=True)
    values = np.random.default_rng(0).normal(size=(rows, len(inputs.channels)))
    text = ",".join(inputs.channels) + "\n" + "".join(",".join(f"{v:.5f}" for v in row) + "\n" for row in values)
    source, sink = TimedLines(text), TimedSink()
    try:
        stream(pipeline, inputs, inputs.read_options(), source, sink)
    except UserError as error:
        return {"refused": str(error)}
    # handed[0] is the header, written[0] the output header; then one line in and one line out per row
    handed, written = np.array(source.handed[1:rows + 1]), np.array(sink.written[1:rows + 1])
    first = pipeline.detector.window - 1  # the rows before the first full window are not scored: leave them out
    latency = written[first:] - handed[first:]
    return {"window": pipeline.detector.window, "rows_per_s": len(latency) / (written[-1] - handed[first]),
            "median_ms": 1e3 * np.median(latency), "p99_ms": 1e3 * np.quantile(latency, 0.99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(MODELS))
    parser.add_argument("--rows", type=int, default=1000, help="rows streamed per model")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(f"{'model':<10} {'window':>6} {'rows/s':>9} {'median ms':>10} {'p99 ms':>8}")
    with tempfile.TemporaryDirectory() as temporary:
        for model in args.models:
            result = bench(train(model, Path(temporary) / model), args.rows, args.device)
            if "refused" in result:
                print(f"{model:<10} cannot stream: {result['refused']}")
                continue
            print(f"{model:<10} {result['window']:>6} {result['rows_per_s']:>9.0f} {result['median_ms']:>10.2f} "
                  f"{result['p99_ms']:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
