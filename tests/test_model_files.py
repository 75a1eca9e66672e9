"""A run folder's model files are data: they load without running code from them, and a missing, damaged or
foreign one ends tsad-predict in one line naming the file, exit 2."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import run_folders, run_tsad, run_tsad_predict, sensor_frame

from tsad.errors import UserError
from tsad.models.base import Detector, build_detector
from tsad.models.iforest import IsolationTrees
from tsad.models.state_files import load_arrays

WINDOW = 16
# model/ files tsad-predict reads, per kind of model (checkpoints/ is for trainer.resume_from)
RUNS = {"torch": ["model=lstm_vae", f"model.window={WINDOW}"], "classic": ["model=iforest", f"model.window={WINDOW}"]}
# runs of other models on three channels: where the damaged files of "from another model" come from
OTHER_RUNS = {"torch": ["model=patchtrad", "model.window=32"], "classic": ["model=knn", "model.window=8"]}
FILES = {"torch": ["detector.json", "inputs.json", "weights.pt"],
         "classic": ["detector.json", "inputs.json", "state.npz"]}
DAMAGE = ("missing", "empty", "truncated", "garbage", "from another model")


def train(folder: Path, columns: list[str], args: list[str]) -> Path:
    frame = sensor_frame(300, seed=0).drop(columns="note")
    for extra in columns[2:]:
        frame[extra] = np.cos(np.arange(300) / 3)
    frame.to_csv(folder / "train.csv", index=False)
    run_tsad([*args, "dataset=csv", f"dataset.path={folder / 'train.csv'}", "trainer=fast", "plots=false"], folder)
    return run_folders(folder)[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """{kind: (run folder, run folder of another model on other data)}."""
    trained = {}
    for kind in RUNS:
        own = train(tmp_path_factory.mktemp(f"{kind}_run"), ["a", "b"], RUNS[kind])
        other = train(tmp_path_factory.mktemp(f"{kind}_other"), ["a", "b", "c"], OTHER_RUNS[kind])
        trained[kind] = own, other
    return trained


def damage(path: Path, kind: str, other_model: Path) -> None:
    data = path.read_bytes()
    if kind == "missing":
        path.unlink()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes())
    else:
        shutil.copyfile(other_model / path.name, path)


def predict_with(run: Path, tmp_path: Path):
    sensor_frame(60, seed=1).drop(columns="note").to_csv(tmp_path / "new.csv", index=False)
    return run_tsad_predict([f"run={run}", "input=new.csv", "out=prediction"], tmp_path)


def one_line_error(result) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tsad-predict: error: "), result.stderr
    return lines[0]


def test_every_model_file_is_one_the_run_saves(runs):
    for kind, (run, _) in runs.items():
        assert sorted(p.name for p in (run / "model").iterdir() if p.is_file()) == sorted(FILES[kind])


@pytest.mark.parametrize("kind, file, how", [(kind, file, how) for kind in FILES for file in FILES[kind]
                                             for how in DAMAGE])
def test_a_damaged_model_file_is_one_line_naming_it(runs, tmp_path, kind, file, how):
    own, other = runs[kind]
    run = tmp_path / "run"
    shutil.copytree(own, run)
    damage(run / "model" / file, how, other / "model")
    line = one_line_error(predict_with(run, tmp_path))
    assert file in line and ("train the run again" in line or "train it again" in line), line
    assert not (tmp_path / "prediction").exists()


def edit_json(path: Path, change) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


@pytest.mark.parametrize("file, change, message", [
    ("detector.json", lambda r: r.update(name="no_such_model"), "unknown model 'no_such_model'"),
    ("detector.json", lambda r: r["params"].update(window=0), "model.window=0 is out of range"),
    ("detector.json", lambda r: r["params"].update(depth=3), "unknown key 'model.depth'"),
    ("detector.json", lambda r: r.pop("normaliser"), "lacks the entry 'normaliser'"),
    ("detector.json", lambda r: r.update(n_channels="2"), "has n_channels='2', not a value of type int"),
    ("detector.json", lambda r: r["normaliser"].update(scale=[1.0]), "not 2 finite shifts and positive scales"),
    ("detector.json", lambda r: r.update(tta={"n": 0}), "tta.n=0 is out of range"),
    ("detector.json", lambda r: r.update(seed=True), "has seed=True, not a value of type int"),
    ("inputs.json", lambda r: r.pop("thresholds"), "lacks the entry 'thresholds'"),
    ("inputs.json", lambda r: r.update(level="step"), "has level='step'"),
    ("inputs.json", lambda r: r.update(channels=["a", 2]), "not a list of column names"),
    ("inputs.json", lambda r: r["thresholds"].update(point="high"), "has thresholds point='high'"),
    ("inputs.json", lambda r: r.update(postprocess={"no_such_key": 1}), "unknown key 'postprocess.no_such_key'"),
    ("inputs.json", lambda r: r.update(channels=["a"]), "describes a detector of 2 channels"),
])
def test_a_bad_value_in_a_json_file_is_one_line_naming_it(runs, tmp_path, file, change, message):
    run = tmp_path / "run"
    shutil.copytree(runs["classic"][0], run)
    edit_json(run / "model" / file, change)
    line = one_line_error(predict_with(run, tmp_path))
    assert file in line and message in line, line


def test_a_pickled_estimator_of_an_older_version_is_never_opened(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs["classic"][0], run)
    (run / "model" / "state.npz").unlink()
    (run / "model" / "estimator.joblib").write_bytes(b"\x80\x04 a pickle that would run code")
    line = one_line_error(predict_with(run, tmp_path))
    assert "estimator.joblib is a pickle of an older tsad" in line, line


def test_an_archive_holding_a_pickled_object_is_refused(tmp_path):
    np.savez(tmp_path / "state.npz", model=np.array("zscore"), mean=np.array([object()], dtype=object))
    with pytest.raises(UserError, match="is truncated or not a tsad state file"):
        load_arrays(tmp_path / "state.npz", "zscore")


def fitted_forest(**params):
    from sklearn.ensemble import IsolationForest

    rng = np.random.default_rng(0)
    return IsolationForest(random_state=0, **params).fit(rng.normal(size=(400, 12)).astype(np.float32))


def test_isolation_trees_score_as_scikit_learn_bit_for_bit():
    rng = np.random.default_rng(1)
    rows = rng.normal(scale=2.0, size=(500, 12)).astype(np.float32)
    rows[::7, 3], rows[::11, 5] = np.nan, np.inf
    for params in ({"n_estimators": 40, "max_samples": 64}, {"n_estimators": 5, "max_samples": 2}):
        forest = fitted_forest(**params)
        np.testing.assert_array_equal(IsolationTrees.of(forest).score_samples(rows), forest.score_samples(rows))


def test_isolation_trees_that_do_not_link_up_are_refused(tmp_path):
    trees = IsolationTrees.of(fitted_forest(n_estimators=3, max_samples=32))
    arrays = trees.arrays()
    arrays["forest_left"] = arrays["forest_left"].copy()
    arrays["forest_left"][1] = 0                                  # a child pointing back at the root: a cycle
    np.savez(tmp_path / "state.npz", **arrays)
    with pytest.raises(UserError, match="whose children are not nodes of their tree after their parent"):
        IsolationTrees.from_arrays(load_arrays(tmp_path / "state.npz", "iforest"), 12, 400)
    np.savez(tmp_path / "state.npz", **trees.arrays())
    restored = IsolationTrees.from_arrays(load_arrays(tmp_path / "state.npz", "iforest"), 12, 400)
    rows = np.random.default_rng(2).normal(size=(50, 12)).astype(np.float32)
    np.testing.assert_array_equal(restored.score_samples(rows), trees.score_samples(rows))


@pytest.mark.parametrize("name, params", [("pca", {"window": 8, "scoring": "density", "density_components": 2}),
                                          ("knn", {"window": 8, "block": 2}), ("zscore", {})])
def test_classic_state_from_a_run_of_other_channels_is_refused(tmp_path, name, params):
    from test_contract import sine_set

    train = sine_set(np.random.default_rng(0), 6)
    detector = build_detector(name, params, seed=0).fit(train)
    detector.save(tmp_path)
    meta = json.loads((tmp_path / "detector.json").read_text())
    meta["n_channels"], meta["normaliser"]["shift"], meta["normaliser"]["scale"] = 3, [0.0] * 3, [1.0] * 3
    (tmp_path / "detector.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="belongs to another run; train the run again"):
        Detector.load(tmp_path)
