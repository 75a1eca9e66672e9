"""NAB's low-FP and low-FN profiles at label-free thresholds of their own (`dataset.low_fp_threshold`,
`dataset.low_fn_threshold`): each profile scores as a run at its threshold would, the standard profile and the
alarms keep threshold.value, scripts/nab_table.py re-scores both, and misuse is refused in one line."""

import pytest
from conftest import load_script, nab_run, read_metrics, run_folders, run_tsad

from tsad.errors import UserError
from tsad.protocols.nab import NAB
from tsad.settings.run import RunConfig

LOW_FP, LOW_FN = 0.8, 0.2  # the mini corpus scores differently at these than at the red zone
PRESET = ["dataset=nab", "model=knn", "model.window=8", "postprocess=likelihood", "threshold=fixed", "plots=false"]


def settings(*overrides: str) -> RunConfig:
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module(version_base="1.3", config_module="tsad.conf"):
        config = compose("config", overrides=["trainer=fast", "device=cpu", *overrides])
    return RunConfig.parse(OmegaConf.to_container(config, resolve=True))


def test_each_profile_scores_at_its_own_threshold(nab_mini, tmp_path):
    red_zone = read_metrics(nab_run(nab_mini, tmp_path / "red_zone", *PRESET, "threshold.value=0.5"))
    strict = read_metrics(nab_run(nab_mini, tmp_path / "strict", *PRESET, f"threshold.value={LOW_FP}"))
    lenient = read_metrics(nab_run(nab_mini, tmp_path / "lenient", *PRESET, f"threshold.value={LOW_FN}"))
    per_profile_run = nab_run(nab_mini, tmp_path / "per_profile", *PRESET, "threshold.value=0.5",
                              f"dataset.low_fp_threshold={LOW_FP}", f"dataset.low_fn_threshold={LOW_FN}")
    per_profile = read_metrics(per_profile_run)
    assert strict["nab_label_free"]["reward_low_FP_rate"] != red_zone["nab_label_free"]["reward_low_FP_rate"]
    assert lenient["nab_label_free"]["reward_low_FN_rate"] != red_zone["nab_label_free"]["reward_low_FN_rate"]
    assert per_profile["nab_label_free"] == {"standard": red_zone["nab_label_free"]["standard"],
                                             "reward_low_FP_rate": strict["nab_label_free"]["reward_low_FP_rate"],
                                             "reward_low_FN_rate": lenient["nab_label_free"]["reward_low_FN_rate"]}
    assert per_profile["nab_detail"]["label_free_thresholds"] == {"standard": 0.5, "reward_low_FP_rate": LOW_FP,
                                                                  "reward_low_FN_rate": LOW_FN}
    assert per_profile["metrics"]["point"] == red_zone["metrics"]["point"]  # alarms stay at threshold.value
    assert per_profile["oracle_nab"] == red_zone["oracle_nab"]

    table = load_script("nab_table")
    postprocess = "likelihood"
    assert table.score_run(per_profile_run, [postprocess])[postprocess, "full"]["label_free"] == \
        per_profile["nab_label_free"]
    assert table.score_run(per_profile_run, [postprocess], fixed=LOW_FP)[postprocess, "full"]["label_free"] == \
        strict["nab_label_free"]


def test_a_profile_threshold_needs_a_fixed_threshold(nab_mini):
    with pytest.raises(UserError, match="dataset.low_fp_threshold=0.4 is a fixed threshold .* use threshold=fixed"):
        NAB().check(settings("dataset=nab", f"dataset.root={nab_mini}", "model=knn", "dataset.low_fp_threshold=0.4"))


def test_profile_thresholds_are_refused_off_nab_and_out_of_range(nab_mini, tmp_path):
    off_nab = run_tsad(["dataset=synthetic", "dataset.low_fn_threshold=0.4"], tmp_path, check=False)
    assert off_nab.returncode == 2 and len(off_nab.stderr.strip().splitlines()) == 1
    assert "unknown key 'dataset.low_fn_threshold' (dataset synthetic has:" in off_nab.stderr
    with pytest.raises(UserError, match=r"dataset.low_fn_threshold=1.5 is out of range: allowed a number >= 0 and "
                                        r"<= 1 \(default null\)"):
        settings("dataset=nab", "dataset.low_fn_threshold=1.5")
    refused = run_tsad(["dataset=nab", f"dataset.root={nab_mini}", "model=knn", "dataset.low_fn_threshold=0.3"],
                       tmp_path, check=False)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "dataset.low_fn_threshold=0.3" in refused.stderr and not run_folders(tmp_path)
