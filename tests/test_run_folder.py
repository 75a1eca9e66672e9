"""A run folder's layout has one owner, tsad.run_folder: every path inside a run folder comes from a RunFolder."""

import ast
import re
from pathlib import Path

import tsad
from tsad import run_folder
from tsad.run_folder import RunFolder, find_run_folders, in_staging

PACKAGE = Path(tsad.__file__).parent
# Names only a run folder has: spelled anywhere in code (docstrings aside), they are a second copy of the layout.
RUN_FOLDER_NAMES = {run_folder.METRICS_FILE, run_folder.JOB_FILE, run_folder.HYDRA_DIR, run_folder.LOG_FILE,
                    run_folder.HISTORY_FILE, run_folder.NAB_RESULTS_DIR, run_folder.NAB_PER_FILE,
                    run_folder.STAGING_DIR, run_folder.REPLACED_DIR, run_folder.LAST_CHECKPOINT_FILE,
                    run_folder.BEST_CHECKPOINT_FILE}
# Words that are config keys and logger names too ("model", "tensorboard"): a copy of the layout only as a path part.
PATH_ONLY_NAMES = {run_folder.SCORES_DIR, run_folder.MODEL_DIR, run_folder.CHECKPOINTS_DIR, run_folder.PLOTS_DIR,
                   run_folder.TENSORBOARD_DIR}
# (module, name) pairs that may spell a layout name, and why.
LEGITIMATE = {
    # The trainer names the files of the checkpoint folder it is given (trainer.resume_from takes that folder);
    # RunFolder.last_checkpoint agrees with it (tests/test_sweeps.py resumes a killed run from there).
    ("training/trainer.py", run_folder.LAST_CHECKPOINT_FILE),
    ("training/trainer.py", run_folder.BEST_CHECKPOINT_FILE),
    # A prediction folder is tsad-predict's own layout, beside the run it reads.
    ("predict.py", run_folder.PLOTS_DIR),
}


def docstrings(tree: ast.AST) -> set[int]:
    """The ids of the string constants that are docstrings."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def layout_names(path: Path) -> list[tuple[int, str]]:
    """(line, name) of every run-folder layout name the module spells outside its docstrings."""
    tree = ast.parse(path.read_text())
    skipped = docstrings(tree)
    joined = {id(node.right) for node in ast.walk(tree) if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)}
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in skipped:
            continue
        parts = set(re.split(r"[/\\]", node.value))
        names = parts & RUN_FOLDER_NAMES
        if len(parts) > 1 or id(node) in joined:
            names |= parts & PATH_ONLY_NAMES
        found += [(node.lineno, name) for name in sorted(names)]
    return found


def test_no_module_but_run_folder_spells_the_layout():
    spelled = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        if module == "run_folder.py":
            continue
        spelled += [f"tsad/{module}:{line}: {name!r}" for line, name in layout_names(path)
                    if (module, name) not in LEGITIMATE]
    assert not spelled, "use tsad.run_folder.RunFolder:\n" + "\n".join(spelled)


def test_the_layout_scan_finds_a_spelled_name_and_leaves_docstrings_and_config_keys_alone(tmp_path):
    module = tmp_path / "module.py"
    module.write_text('"""Writes metrics.json."""\n'
                      'def f(run_dir, config):\n'
                      '    """Reads model/."""\n'
                      '    name = config["model"]["name"]\n'
                      '    return run_dir / "model", run_dir / "history.csv", f"nab_results/{name}"\n')
    assert layout_names(module) == [(5, "model"), (5, "history.csv"), (5, "nab_results")]


def test_a_staging_folder_is_laid_out_as_its_run_folder(tmp_path):
    folder = RunFolder(tmp_path / "run")
    staging = folder.staging
    assert staging.root.parent == folder.root and in_staging(staging.root.relative_to(tmp_path))
    for name in ("metrics", "job", "history", "scores", "model", "last_checkpoint", "plots", "nab_per_file"):
        assert getattr(staging, name).relative_to(staging.root) == getattr(folder, name).relative_to(folder.root)
    assert folder.last_checkpoint.parent == folder.best_checkpoint.parent == folder.checkpoints
    assert folder.checkpoints.parent == folder.model
    assert folder.step_scores("test").parent == folder.series_scores("val").parent == folder.scores


def test_run_folders_are_found_but_not_inside_a_staging_folder(tmp_path):
    finished, killed = RunFolder(tmp_path / "a"), RunFolder(tmp_path / "b")
    for path in (finished.metrics, killed.hydra_config, finished.staging.metrics, finished.staging.hydra_config):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    assert find_run_folders([tmp_path]) == [finished.root.resolve(), killed.root.resolve()]
