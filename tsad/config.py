"""The run configuration outside `tsad-run`: the same Hydra composition (and its typed settings), for scripts and
notebooks."""

from __future__ import annotations


def compose(overrides: list[str]) -> dict:
    """conf/config.yaml with the given overrides (e.g. ["model=dagmm", "seed=1"]), resolved to plain dicts."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module("tsad.conf", version_base="1.3"):
        config = hydra_compose("config", overrides=overrides)
    return OmegaConf.to_container(config, resolve=True)


def run_settings(overrides: list[str]):
    """The typed settings of a run composed with `overrides` (tsad.settings.run.RunConfig), checked as at the door."""
    from tsad.settings.run import RunConfig

    return RunConfig.parse(compose(overrides))
