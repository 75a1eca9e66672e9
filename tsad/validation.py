"""Validation at the door of `tsad-run`: every job's config is checked before Hydra creates a run folder.

The config is composed from the command line as Hydra will compose it (the same config module, --config-dir,
--config-name, presets and overrides). For a sweep with the basic sweeper (-m, or a preset's hydra.sweeper.params)
every job's config is checked, up to MAX_SWEEP_JOBS jobs; a larger sweep is checked on as many jobs as its longest
list of values, which between them use every value of every swept key. Other sweepers (Optuna) draw their jobs as
they go: their base config is checked. The checks are those the run makes before it reads data: the config parsed
into typed settings (tsad.settings.run.RunConfig, each section checking its own keys and ranges) and the run's
protocol's check; this module only names the nearest valid key for an override Hydra cannot apply, and
refuses a run or sweep folder known in advance that this run may not write (tsad.run_folder says what a folder
holds), before Hydra writes into it.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections import defaultdict
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from tsad.errors import UserError
from tsad.run_folder import JOB_FILE, METRICS_FILE, RunFolder
from tsad.settings import fields

MAX_SWEEP_JOBS = 32
FOREIGN_NAMES_SHOWN = 3
GROUPS = ("model", "dataset", "trainer", "threshold", "postprocess", "logger")
FAILED_OVERRIDE = re.compile(r"Could not override '([^']+)'")


def preflight(arguments: list[str]) -> Path | None:
    """Check the config of every job the command line asks for; a one-line UserError on the first problem.

    Returns a single run's folder as the config names it now (None for a sweep or when nothing is run): a run
    folder named after the time (Hydra's ${now:...}) is another one when Hydra names it again.
    """
    from hydra._internal.utils import get_args_parser
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from hydra.types import RunMode

    args = get_args_parser().parse_args(arguments)
    if args.help or args.hydra_help or args.cfg or args.info or args.shell_completion or args.experimental_rerun:
        return None
    check_override_syntax(args.overrides)
    try:
        composer = Composer(args.config_dir, args.config_name or "config")
        # composed as a sweep's base config (as Hydra reads the mode a preset sets), so a single run reads it too
        config = composer.compose(args.overrides, RunMode.MULTIRUN)
        if args.multirun or config.hydra.mode == RunMode.MULTIRUN:
            check_writable(known_now(config, "hydra.sweep.dir"), "hydra.sweep.dir")
            check_sweep_folder(known_now(config, "hydra.sweep.dir"))
            check_sweep(composer, config)
            return None
        check_no_sweep(args.overrides)
        job = job_config(config)
        check_config(job)
        run_dir = known_now(config, "hydra.run.dir")
        check_writable(run_dir, "hydra.run.dir")
        if run_dir is None:
            return None
        check_run_folder(Path(run_dir), job, sweep=False)
        return Path(run_dir)
    except (HydraException, OmegaConfBaseException) as error:
        raise UserError(one_line(str(error))) from None
    finally:
        GlobalHydra.instance().clear()


def check_writable(folder: str | None, key: str) -> None:
    """A run or sweep folder tsad can make and write: its nearest existing ancestor is a writable folder."""
    if folder is None:
        return
    path = Path(folder).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"{key}={folder}: {existing} is a file, not a folder; choose another folder "
                        f"(paths.output_dir=... or {key}=...)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{key}={folder}: {existing} cannot be written; choose a folder you may write to "
                        f"(paths.output_dir=... or {key}=...)")


def check_override_syntax(overrides: list[str]) -> None:
    """A value Hydra's override grammar cannot read (`dataset.separator=;`) fails naming the quoting that works."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_override(override)
        except HydraException:
            key, _, value = override.partition("=")
            raise UserError(f"{override}: Hydra cannot read the value {value!r} as written (Hydra's override grammar); "
                            f"text with characters such as ; goes in double quotes "
                            f"inside shell quotes: '{key}=\"{value}\"'") from None


class Composer:
    """Hydra's composition of tsad's config, from the search path `tsad-run` itself uses."""

    def __init__(self, config_dir: str | None, config_name: str):
        from hydra._internal.hydra import Hydra
        from hydra._internal.utils import create_automatic_config_search_path
        from hydra.core.config_search_path import SearchPathQuery

        search_path = create_automatic_config_search_path(None, "tsad.cli", "conf")
        if config_dir is not None:
            folder = os.path.abspath(config_dir)
            if not os.path.isdir(folder):
                raise UserError(f"--config-dir {config_dir}: no such folder")
            search_path.prepend(provider="command-line", path=f"file://{folder}",
                                anchor=SearchPathQuery(provider="schema"))
        self.hydra = Hydra.create_main_hydra2(task_name="tsad", config_search_path=search_path)
        self.config_name = config_name

    def compose(self, overrides: list[str], run_mode) -> DictConfig:
        """The composed config; an override of a key the config lacks fails naming the nearest keys."""
        from hydra.errors import ConfigCompositionException

        try:
            return self._compose(overrides, run_mode)
        except ConfigCompositionException as error:
            failed = FAILED_OVERRIDE.search(str(error))
            if failed is None:
                raise
            key = failed.group(1)
            rest = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] != key]
            raise unknown_key(key, self._compose(rest, run_mode)) from None

    def _compose(self, overrides: list[str], run_mode) -> DictConfig:
        return self.hydra.compose_config(self.config_name, list(overrides), run_mode=run_mode,
                                         with_log_configuration=False)


def unknown_key(key: str, config: DictConfig) -> UserError:
    """The error for an override of `key`, which `config` lacks: the nearest key its parent has, and all of them."""
    parent, _, name = key.rpartition(".")
    node = OmegaConf.select(config, parent) if parent else config
    if not isinstance(node, DictConfig):
        return UserError(f"unknown key {key!r}: {parent} is not a section of the config")
    known = [str(k) for k in node if k != "hydra"]
    group = parent if parent in GROUPS else None
    owner = f"{group} {choices(config).get(group)}" if group else parent or "the config"
    return fields.unknown_key(key, sorted(known), f"{owner} has")


def check_no_sweep(overrides: list[str]) -> None:
    """A single run takes one value per key."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for override in OverridesParser.create().parse_overrides(list(overrides)):
        if override.is_sweep_override():
            raise UserError(f"{override.input_line} sweeps over values: add -m (--multirun) to run one job per value, "
                            f"or write a list value as {override.get_key_element()}=[a,b]")


def check_sweep(composer: Composer, base: DictConfig) -> None:
    """Check every job of a basic sweep (or the jobs that use every value, see the module docstring), or the base
    config of another sweeper's."""
    from hydra.types import RunMode

    jobs = sweep_jobs(base)
    if jobs is None:
        check_config(job_config(base))
        return
    hydra_overrides = OmegaConf.to_container(base.hydra.overrides.hydra)  # as given: `${...}` unresolved
    sweep_dir = Path(base.hydra.sweep.dir)
    values = defaultdict(set)
    for override in itertools.chain(*jobs):
        values[override.split("=", 1)[0]].add(override)
    swept = {key for key, overrides in values.items() if len(overrides) > 1}  # to name a failing job by
    for job in jobs:
        try:
            config = composer.compose([*hydra_overrides, *job], RunMode.MULTIRUN)
            resolved = job_config(config)
            check_config(resolved)
            subdir = known_now(config, "hydra.sweep.subdir")
            if sweep_dir.is_dir() and subdir is not None:
                check_run_folder(sweep_dir / subdir, resolved, sweep=True)
        except UserError as error:
            named = [o for o in job if o.split("=", 1)[0] in swept]
            raise UserError(f"{error} [sweep job: {' '.join(named) or 'the only one'}]") from None


def sweep_jobs(base: DictConfig) -> list[list[str]] | None:
    """The overrides of each job the basic sweeper would launch (None for another sweeper), as it splits them."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not str(base.hydra.sweeper.get("_target_", "")).endswith(".BasicSweeper"):
        return None
    params = [f"{key}={value}" for key, value in (base.hydra.sweeper.get("params") or {}).items()]
    values = {}
    task = OmegaConf.to_container(base.hydra.overrides.task)  # as given: `${...}` unresolved
    for override in OverridesParser.create().parse_overrides([*params, *task]):
        values[override.get_key_element()] = [job[0] for job in BasicSweeper.split_arguments([override], None)[0]]
    lists = list(values.values())
    if not lists:
        return [[]]
    if math.prod(map(len, lists)) <= MAX_SWEEP_JOBS:
        return [list(job) for job in itertools.product(*lists)]
    return [[alternatives[i % len(alternatives)] for alternatives in lists] for i in range(max(map(len, lists)))]


def check_config(config: dict) -> None:
    """The checks a run makes before it reads data, on one job's resolved config: every section parses itself
    (keys, types, declared ranges), then the run's protocol checks the combination."""
    from tsad.experiment import check
    from tsad.settings.run import RunConfig

    check(RunConfig.parse(config))


def check_run_folder(run_dir: Path, config: dict, sweep: bool) -> None:
    """Refuse, before Hydra writes into it, a run folder this run may not write: one another run is writing, one
    holding files that are not a tsad run (whatever overwrite says), or one holding a finished run that this run
    may not replace (as the job itself would refuse it)."""
    folder = RunFolder(run_dir)
    folder.check_not_in_use()
    foreign = folder.foreign_files()
    if foreign:
        key = "hydra.sweep.dir" if sweep else "hydra.run.dir"
        shown = ", ".join(foreign[:FOREIGN_NAMES_SHOWN]) + (", ..." if len(foreign) > FOREIGN_NAMES_SHOWN else "")
        raise UserError(f"{run_dir} holds files that are not a tsad run ({shown}); a run writes only into a new or "
                        f"empty folder or a run's folder: choose another {key}")
    folder.check_replaceable(config, sweep)


def check_sweep_folder(sweep_dir: str | None) -> None:
    """Refuse a sweep folder that is a run's folder: the sweep's jobs would be written inside that run."""
    if sweep_dir is None:
        return
    folder = RunFolder(Path(sweep_dir))
    if any(path.exists() for path in (folder.metrics, folder.job, folder.staging.root)):
        raise UserError(f"hydra.sweep.dir={sweep_dir} is a run's folder (it holds {METRICS_FILE} or {JOB_FILE}); a "
                        f"sweep would write its jobs inside that run: choose another hydra.sweep.dir")


def known_now(config: DictConfig, key: str) -> str | None:
    """A folder name the config sets, resolved; None when it names what is known only once the job runs (e.g. the
    job's number in a sweep, hydra.job.num)."""
    try:
        return OmegaConf.select(config, key)
    except OmegaConfBaseException:
        return None


def job_config(config: DictConfig) -> dict:
    """The resolved config a job gets (without Hydra's own node, which `${hydra:...}` still reads)."""
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(config)
    job = config.copy()
    with open_dict(job):
        job.pop("hydra", None)
    return OmegaConf.to_container(job, resolve=True)


def choices(config: DictConfig) -> dict:
    return dict(OmegaConf.select(config, "hydra.runtime.choices", default={}) or {})


def one_line(message: str) -> str:
    """Hydra's and OmegaConf's multi-line messages in one line."""
    return " ".join(line.strip() for line in message.strip().splitlines() if line.strip())
