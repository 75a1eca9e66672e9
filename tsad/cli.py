"""`tsad-run`: compose the Hydra config groups into one run (or a sweep with -m).

Only the standard library and Hydra are imported at module level so `--help` stays fast;
torch, scikit-learn and matplotlib load inside the task.
"""

from __future__ import annotations

import logging
import sys
from importlib import resources

import hydra
from omegaconf import DictConfig, OmegaConf

from tsad.errors import UserError

log = logging.getLogger("tsad")

CONFIG_GROUPS = ("model", "dataset", "trainer", "threshold", "experiment")


def group_options(group: str) -> list[str]:
    folder = resources.files("tsad.conf").joinpath(group)
    if not folder.is_dir():
        return []
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


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


def is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.get().mode == RunMode.MULTIRUN


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def task(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    from tsad.experiment import run

    run_dir = HydraConfig.get().runtime.output_dir
    config = OmegaConf.to_container(cfg, resolve=True)
    try:
        record = run(config, run_dir)
    except UserError as error:
        if is_multirun():
            raise
        print(f"tsad-run: error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"run folder: {run_dir}")
    print("headline ({}): {}".format(record["level"], "  ".join(
        f"{k}={v:.4f}" for k, v in record["headline"].items() if v is not None)))
    return record["headline"].get("roc_auc")


def main() -> None:
    try:
        check_group_overrides(sys.argv[1:])
    except UserError as error:
        print(f"tsad-run: error: {error}", file=sys.stderr)
        sys.exit(2)
    task()


if __name__ == "__main__":
    main()
