"""The configs live in the top-level conf/ and still travel inside the package: a non-editable install runs anywhere."""

from __future__ import annotations

import os
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

from conftest import TINY_SERIES, read_metrics, run_folders

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_list_names_every_package_folder():
    """pyproject.toml lists the packages (tsad.conf maps to conf/, which discovery cannot): a new package folder
    missing from the list would be left out of the wheel."""
    block = re.search(r"^packages = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.S | re.M).group(1)
    listed = set(re.findall(r'"([\w.]+)"', block))
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "tsad").rglob("__init__.py")}
    assert listed == folders | {"tsad.conf"}
    assert (ROOT / "conf" / "config.yaml").is_file() and not (ROOT / "tsad" / "conf").exists()


def test_a_non_editable_install_runs_tsad_run_from_an_unrelated_folder(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    # The new venv reuses this environment's dependencies (torch, hydra, ...) but not its editable tsad.
    (purelib,) = {p for p in site.getsitepackages() if p.endswith("site-packages")}
    new_site = next((venv / "lib").glob("python*/site-packages"))
    (new_site / "dependencies.pth").write_text(purelib + "\n")
    for editable in Path(purelib).glob("__editable__*tsad*"):
        (new_site / editable.name).write_text("")  # an empty .pth of the same name hides the editable finder
    python = venv / "bin" / "python"
    # A copy of the sources: setuptools builds in the source tree, whose build/ could keep modules removed since.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "outputs", "*.egg-info",
                                                                "__pycache__", ".pytest_cache"))
    # pip from the dependencies; --ignore-installed: leave the editable install it sees there alone
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--ignore-installed",
                    "-q", str(source)], check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": "", "HOME": str(tmp_path)}
    where = subprocess.run([str(python), "-c", "import tsad.conf; print(tsad.conf.__file__)"], capture_output=True,
                           text=True, cwd=elsewhere, env=env, timeout=60)
    assert where.stdout.startswith(str(venv)), f"the test must exercise the installed copy: {where.stdout}"
    result = subprocess.run([str(venv / "bin" / "tsad-run"), "model=random", *TINY_SERIES,
                             f"paths.output_dir={elsewhere}"], capture_output=True, text=True, cwd=elsewhere,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    (folder,) = run_folders(elsewhere)
    assert read_metrics(folder)["status"] == "OK"
