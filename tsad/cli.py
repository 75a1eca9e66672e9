"""`tsad-run`: compose the Hydra config groups into one run (or a sweep with -m).

Only the standard library and Hydra are imported at module level so `--help` stays fast;
torch, scikit-learn and matplotlib load inside the task.
"""

from __future__ import annotations

import logging
import shutil
import sys
import textwrap
import warnings
from importlib import resources, util
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from tsad.errors import UserError
from tsad.results import OK, error_text, failure_status
from tsad.run_folder import RunFolder
from tsad.sweeps.job import JobContext, folder_hash, folder_values, run_job
from tsad.sweeps.ray_resources import job_cpus, job_gpus, job_threads
from tsad.sweeps.summary import launched, summarise
from tsad.validation import preflight

log = logging.getLogger("tsad")

# hydra/launcher=ray shares its name with the Ray launcher's own config, which Hydra then takes as its schema (as
# intended) and warns about each time it loads the preset.
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/ray' is validated against ConfigStore schema")

CONFIG_GROUPS = ("model", "dataset", "trainer", "threshold", "postprocess", "logger", "experiment", "hparams_search")
# Options that need an optional package (Hydra plugins, experiment loggers): the module each needs, and the extra
# that installs it.
PLUGINS = {
    "hparams_search": ("hydra_plugins.hydra_optuna_sweeper", "optuna"),
    "hydra/sweeper=optuna": ("hydra_plugins.hydra_optuna_sweeper", "optuna"),
    "hydra/launcher=local": ("hydra_plugins.hydra_joblib_launcher", "sweeps"),
    "hydra/launcher=joblib": ("hydra_plugins.hydra_joblib_launcher", "sweeps"),
    "hydra/launcher=slurm": ("hydra_plugins.hydra_submitit_launcher", "sweeps"),
    "hydra/launcher=slurm_local": ("hydra_plugins.hydra_submitit_launcher", "sweeps"),
    "hydra/launcher=submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "sweeps"),
    "hydra/launcher=submitit_local": ("hydra_plugins.hydra_submitit_launcher", "sweeps"),
    "hydra/launcher=ray": ("hydra_plugins.hydra_ray_launcher", "ray"),
    "logger=tensorboard": ("tensorboard", "tracking"),
    "logger=mlflow": ("mlflow", "tracking"),
}

# `tsad-run --help` (conf/hydra/help/tsad.yaml) gives every config group one line, then its options.
# A group missing here is still listed, without its line.
GROUP_HELP = {
    "model": "the detector and its hyperparameters",
    "dataset": "data, splits and normalisation (fitted on train only)",
    "trainer": "the shared training loop of the deep models (epochs, batch size, LR, early stopping)",
    "threshold": "how the alarm threshold is chosen, from validation or train scores (never test)",
    "postprocess": "causal post-processing of step scores on point-level data (anomaly likelihood, ...)",
    "logger": "experiment tracking besides the run folder: TensorBoard or MLflow",
    "experiment": "named presets: whole sweeps (benchmark, smoke; no -m needed) or one tuned run (nab, ecg5000)",
    "hparams_search": "Optuna searches on a validation objective (select with +hparams_search=...)",
    "hydra/launcher": "where sweep jobs run",
}
HELP_WIDTH, HELP_INDENT = 100, 18

# Resolvers the configs use: job folder names in sweeps, what each job of hydra/launcher=ray asks Ray for, and the
# registered models of one kind (the presets' model lists; imports the models only when a preset is used).
OmegaConf.register_new_resolver("tsad_config_hash", folder_hash, replace=True)
OmegaConf.register_new_resolver("tsad_job_values", folder_values, replace=True)
OmegaConf.register_new_resolver("tsad_ray_job_gpus", job_gpus, replace=True, use_cache=True)
OmegaConf.register_new_resolver("tsad_ray_job_cpus", job_cpus, replace=True, use_cache=True)
OmegaConf.register_new_resolver("tsad_ray_job_threads", job_threads, replace=True)
OmegaConf.register_new_resolver("tsad_models", lambda kind="all": model_names(kind), replace=True)
OmegaConf.register_new_resolver("tsad_help_groups", lambda *, _root_: help_groups(_root_), replace=True)


def model_names(kind: str) -> str:
    from tsad.models.base import model_names as registered

    return registered(kind)


def group_options(group: str) -> list[str]:
    folder = resources.files("tsad.conf").joinpath(group)
    if not folder.is_dir():
        return []
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def help_groups(root: DictConfig) -> str:
    """The config groups for `--help`: each with its line from GROUP_HELP and its options, the selected one
    starred. Groups and options come from Hydra's config search path, so those of --config-dir and plugins show."""
    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    found = [group for group in loader.list_groups("") if group != "hydra"] + ["hydra/launcher"]
    groups = [group for group in GROUP_HELP if group in found] + sorted(set(found) - set(GROUP_HELP))
    choices = OmegaConf.select(root, "hydra.runtime.choices", default={})
    indent = " " * HELP_INDENT
    blocks = []
    for group in groups:
        options = ", ".join(f"{option}*" if option == choices.get(group) else option
                            for option in sorted(loader.get_group_options(group)))
        heading = f"  {group:<{HELP_INDENT - 3}} {GROUP_HELP.get(group, '')}".rstrip()
        wrapped = textwrap.fill(options or "(none)", width=HELP_WIDTH, initial_indent=indent, subsequent_indent=indent,
                                break_on_hyphens=False)
        blocks.append(f"{heading}\n{wrapped}")
    return "\n".join(blocks)


def check_group_overrides(arguments: list[str]) -> None:
    """Fail in one line on `model=nope` (Hydra's own message spans many lines)."""
    if any(a in ("-cd", "--config-dir") or a.startswith(("--config-dir=", "hydra.searchpath")) for a in arguments):
        return  # user config folders may add options we cannot see here
    for argument in arguments:
        if argument.startswith("-") or "=" not in argument:
            continue
        key, value = argument.split("=", 1)
        key = key.lstrip("+~")
        if key not in CONFIG_GROUPS or "(" in value:
            continue
        known = group_options(key)
        for option in value.split(","):
            if option and option != "null" and option not in known:
                raise UserError(f"unknown {key} {option!r}; choose one of: {', '.join(known)} "
                                f"(or add your own {key}/{option}.yaml with --config-dir)")


# Hydra's modes: at most one may be given (Hydra itself fails with a traceback).
HYDRA_MODES = {"-m": "--multirun", "--multirun": "--multirun", "-r": "--run", "--run": "--run", "-c": "--cfg",
               "--cfg": "--cfg", "-i": "--info", "--info": "--info", "-sc": "--shell-completion",
               "--shell-completion": "--shell-completion"}


def check_modes(arguments: list[str]) -> None:
    """Fail in one line on e.g. `-m ... --cfg job`: Hydra runs one mode at a time."""
    modes = sorted({HYDRA_MODES[a.split("=", 1)[0]] for a in arguments if a.split("=", 1)[0] in HYDRA_MODES})
    if len(modes) > 1:
        hint = " (drop --multirun to print one job's config)" if "--multirun" in modes else ""
        raise UserError(f"{' and '.join(modes)} cannot be combined: give one of --run, --multirun, --cfg, --info, "
                        f"--shell-completion{hint}")


def check_plugins(arguments: list[str]) -> None:
    """Fail in one line when an option needs a Hydra plugin from an extra that is not installed."""
    for argument in arguments:
        key = argument.lstrip("+~").split("=", 1)[0]
        needed = PLUGINS.get(key) or PLUGINS.get(argument.lstrip("+~"))
        if needed and util.find_spec(needed[0]) is None:
            raise UserError(f"{argument} needs the {needed[1]!r} extra, which is not installed: "
                            f"pip install 'tsad[{needed[1]}]'")


# A single run's folder that held something before the run (a fixed hydra.run.dir): a failing run never removes it.
held_run_dir: Path | None = None


def job_context(run_dir: str) -> JobContext:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return JobContext(Path(run_dir))
    return JobContext(Path(run_dir), sweep_dir=Path(hydra_cfg.sweep.dir), job_num=hydra_cfg.job.get("num"))


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def task(cfg: DictConfig) -> float | None:
    """One job: the run (or, with resume=true, the skip or the resumed run); returns the objective."""
    from hydra.core.hydra_config import HydraConfig

    context = job_context(HydraConfig.get().runtime.output_dir)
    print(f"run folder: {context.run_dir}", flush=True)
    config = OmegaConf.to_container(cfg, resolve=True)
    try:
        value, folder = run_job(config, context)
    except Exception as error:
        if context.sweep_dir is not None:
            return None  # the sweep goes on; its summary gives this job's line (the traceback is in its run.log)
        if not isinstance(error, UserError):
            print(f"tsad-run: error: the run ended {failure_status(error)}: {error_text(error)}; the traceback is in "
                  f"{RunFolder(context.run_dir).run_log}", file=sys.stderr)
            sys.exit(1)
        if held_run_dir is None or context.run_dir.resolve() != held_run_dir.resolve():
            remove_run_folder(context.run_dir, Path(config["paths"]["output_dir"]))
        print(f"tsad-run: error: {error}", file=sys.stderr)
        sys.exit(2)
    record = RunFolder(folder).read_metrics() or {}
    print(f"run folder: {folder}")
    print("headline ({}): {}".format(record.get("level"), "  ".join(
        f"{k}={v:.4f}" for k, v in (record.get("headline") or {}).items() if v is not None)))
    return value


def remove_run_folder(run_dir: Path, output_dir: Path) -> None:
    """Remove the folder a single run made before its config failed a check that needs data (e.g. a window longer
    than the shortest series), and the folders above it that it left empty, up to the output folder; never while
    another run writes it (one that started into the same folder at once), nor when it holds a finished run."""
    folder = RunFolder(run_dir)
    try:
        with folder.locked():
            if (folder.read_metrics() or {}).get("status") == OK:
                return
            shutil.rmtree(run_dir, ignore_errors=True)
    except UserError:
        return
    for parent in run_dir.resolve().parents:
        if parent == output_dir.resolve() or not parent.is_relative_to(output_dir.resolve()) or any(parent.iterdir()):
            break
        parent.rmdir()


def check_command_line(arguments: list[str]) -> Path | None:
    """The door: every check a command line passes before Hydra creates a folder; a one-line UserError on the first
    problem. Returns a single run's folder when the config names it in advance (see validation.preflight)."""
    check_modes(arguments)
    check_group_overrides(arguments)
    check_plugins(arguments)
    return preflight(arguments)


def main() -> None:
    global held_run_dir
    launched.clear()  # main may run more than once in a process (the tests call it): no earlier sweep is summarised
    try:
        run_dir = check_command_line(sys.argv[1:])
    except UserError as error:
        print(f"tsad-run: error: {error}", file=sys.stderr)
        sys.exit(2)
    held_run_dir = run_dir if run_dir is not None and run_dir.is_dir() and any(run_dir.iterdir()) else None
    code = 0
    try:
        task()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
    except KeyboardInterrupt:
        print("tsad-run: interrupted", file=sys.stderr)
        code = 130
    if launched:
        lines, failed = summarise(launched["sweep_dir"])
        print("\n".join(lines), flush=True)
        if failed and code == 0:
            code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
