"""A fingerprint of what a fixed set of runs computes, to show that a refactoring changes no result.

    python scripts/snapshot_outputs.py OUT_DIR [--nab PATH]     # runs everything into OUT_DIR, prints the digest file
    python scripts/snapshot_outputs.py --compare A.json B.json   # the entries that differ (exit 1 if any)

The runs: every registered model on tiny series-level data, two point-level runs (one post-processed), the CSV and
quasi-periodic families, a four-job sweep with its table, and (with --nab) NAB's protocol on three of its files.
Every value of every metrics.json (but timings, environment, paths and dates), every score and history CSV, every
model file (tensors compared by value, so that pickling order does not matter) and every table file is hashed.
One torch thread per run, so the numbers are the same on every run of this machine.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TINY = ["dataset.n_train=40", "dataset.n_val=10", "dataset.n_test=30", "dataset.min_length=40",
        "dataset.max_length=80", "trainer=fast", "plots=false"]
MODELS = ["random", "zscore", "iforest", "pca", "knn", "lstm_vae", "dagmm", "seq2gmm", "sdmae", "carla",
          "tracegpt", "patchad", "patchtrad", "prodiffad"]
# Values that say when, where or how fast a run went, not what it computed.
VOLATILE = {"timing", "environment", "run_dir", "created", "started_at", "host", "pid", "source", "input", "run",
            "score_seconds", "fit_seconds", "total_seconds", "seconds", "path", "folder", "git_commit"}


def runs(nab: str | None) -> dict[str, list[str]]:
    plan = {f"model_{name}": [f"model={name}", *TINY] for name in MODELS}
    plan["points_iforest"] = ["model=iforest", "dataset=synthetic_points", "dataset.max_length=600", "plots=false"]
    plan["points_knn_likelihood"] = ["model=knn", "dataset=synthetic_points", "dataset.max_length=600",
                                     "postprocess=likelihood_spatial_rest", "threshold=fixed", "threshold.value=0.9",
                                     "plots=false"]
    plan["quasi_periodic_pca"] = ["model=pca", "dataset=quasi_periodic", "dataset.n_train=30", "dataset.n_val=10",
                                  "dataset.n_test=20", "plots=false"]
    plan["csv_zscore"] = ["model=zscore", "dataset=csv", f"dataset.path={sensor_csv()}", "plots=false"]
    plan["threshold_sigma_plots"] = ["model=pca", "threshold=sigma", "threshold.k=2", *TINY[:-1]]
    if nab:
        plan["nab_knn"] = ["experiment=nab", f"dataset.root={nab}",
                           "dataset.files=[realKnownCause/nyc_taxi.csv,artificialWithAnomaly/art_daily_jumpsup.csv,"
                           "realTweets/Twitter_volume_AAPL.csv]"]
    return plan


def sensor_csv() -> Path:
    """examples/my_sensor.csv at a fixed place, so that the config (and its hash) is the same from any checkout."""
    target = Path(tempfile.gettempdir()) / "tsad_snapshot" / "my_sensor.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__).resolve().parents[1] / "examples" / "my_sensor.csv", target)
    return target


def run_all(out: Path, nab: str | None) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    tsad_run = str(Path(sys.executable).with_name("tsad-run"))
    for name, overrides in runs(nab).items():
        folder = out / name
        if (folder / "metrics.json").is_file():
            continue
        subprocess.run([tsad_run, *overrides, f"hydra.run.dir={folder}", "device=cpu"], check=True, env=env,
                       capture_output=True)
    sweep = out / "sweep"
    if not sweep.is_dir():
        subprocess.run([tsad_run, "-m", "model=pca,iforest", "seed=0,1", *TINY, f"hydra.sweep.dir={sweep}",
                        "device=cpu"], check=True, env=env, capture_output=True)
        subprocess.run([str(Path(sys.executable).with_name("tsad-table")), str(sweep), "--metric", "roc_auc",
                        "--out", str(out / "table")], check=True, env=env, capture_output=True)


def scrub(value):
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in sorted(value.items()) if k not in VOLATILE}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def file_digest(path: Path) -> str:
    if path.suffix == ".json":
        return hashlib.sha256(json.dumps(scrub(json.loads(path.read_text())), sort_keys=True).encode()).hexdigest()
    if path.suffix in (".pt", ".pth"):
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict):  # a checkpoint's history holds each epoch's seconds
            state = {k: v for k, v in state.items() if k != "history"}
        return hashlib.sha256(tensor_bytes(state)).hexdigest()
    if path.name == "history.csv":
        import pandas as pd

        frame = pd.read_csv(path)
        return hashlib.sha256(frame.drop(columns=[c for c in frame if c in VOLATILE]).to_csv(index=False).encode()
                              ).hexdigest()
    if path.suffix == ".gz":  # gzip's header holds the time it was written
        return hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest()
    if path.suffix == ".csv" and path.name == "results.csv":  # the table's rows name the run folders
        import pandas as pd

        frame = pd.read_csv(path)
        frame = frame[[c for c in frame.columns if c.split(".")[-1] not in VOLATILE and "folder" not in c]]
        return hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tensor_bytes(value) -> bytes:
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu().contiguous().numpy().tobytes()
    if isinstance(value, dict):
        return b"".join(str(k).encode() + tensor_bytes(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0])))
    if isinstance(value, (list, tuple)):
        return b"".join(tensor_bytes(v) for v in value)
    buffer = io.BytesIO()
    buffer.write(repr(value).encode())
    return buffer.getvalue()


def digest_tree(out: Path) -> dict[str, str]:
    skip_dirs = {".hydra", "plots", ".staging", ".replaced"}
    digests = {}
    for path in sorted(out.rglob("*")):
        if (not path.is_file() or skip_dirs & set(path.relative_to(out).parts)
                or path.name in ("run.log", "job.json", "multirun.yaml", "digests.json")):
            continue
        if path.suffix in (".png", ".log", ".md", ".tex") and "table" not in path.parts:
            continue
        key = str(path.relative_to(out))
        if "sweep" in path.parts and path.parent != out / "sweep":  # job folder names end in the config hash
            key = str(path.relative_to(out))
        digests[key] = file_digest(path)
    return digests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", type=Path)
    parser.add_argument("--nab", help="a NAB copy (data/ and labels/) for the NAB run")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"))
    parser.add_argument("--digest-only", action="store_true", help="fingerprint OUT_DIR's runs again, run nothing")
    args = parser.parse_args()
    if args.compare:
        a, b = (json.loads(p.read_text()) for p in args.compare)
        differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        print("\n".join(f"differs: {k}" for k in differ) or f"identical: {len(a)} files", flush=True)
        sys.exit(1 if differ else 0)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.digest_only:
        run_all(args.out, args.nab)
    target = args.out / "digests.json"
    target.write_text(json.dumps(digest_tree(args.out), indent=1, sort_keys=True))
    print(target)


if __name__ == "__main__":
    main()
