"""The same command and seed give bit-identical results on CPU: every number of metrics.json's result fields, the
training history and the scores. One run is the `tsad-run` command, the other runs in the test process, which has
run others before: neither a fresh process (its own hash seed) nor what an earlier run left changes a result."""

import csv
import gzip

from conftest import TINY_SERIES, read_metrics, run_tsad, run_tsad_command

# The parts of metrics.json a run computes; timing, environment and where it ran differ from run to run.
RESULT_FIELDS = ("level", "metrics", "validation", "headline", "threshold", "n_parameters", "epochs_trained", "data",
                 "warnings")
# A torch model with dropout, shuffled batches and early stopping on a validation loss, run on the CPU.
COMMAND = ["model=lstm_vae", *TINY_SERIES, "trainer.max_epochs=3", "device=cpu", "seed=3"]


def leaves(node, path=""):
    """(dotted path, value) of every leaf; floats as their exact hexadecimal form, so equal means bit-identical."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from leaves(value, f"{path}[{index}]")
    else:
        yield path, node.hex() if isinstance(node, float) else node


def history(folder) -> list[dict]:
    """history.csv's rows without the seconds each epoch took."""
    with open(folder / "history.csv") as file:
        return [{key: value for key, value in row.items() if key != "seconds"} for row in csv.DictReader(file)]


def test_command_line_the_same_command_twice_gives_bit_identical_results_on_cpu(tmp_path):
    folders = [tmp_path / "first", tmp_path / "second"]
    run_tsad_command([*COMMAND, f"hydra.run.dir={folders[0]}"], tmp_path)
    run_tsad([*COMMAND, f"hydra.run.dir={folders[1]}"], tmp_path)
    first, second = (read_metrics(folder) for folder in folders)
    assert first["status"] == second["status"] == "OK" and first["epochs_trained"] > 0
    for field in RESULT_FIELDS:
        assert list(leaves(first[field])) == list(leaves(second[field])), field
    assert sum(isinstance(value, str) and value.startswith(("0x", "-0x")) for _, value in leaves(first)) > 20
    assert history(folders[0]) == history(folders[1])
    for name in ("scores/test_series.csv", "scores/val_series.csv"):
        assert (folders[0] / name).read_bytes() == (folders[1] / name).read_bytes(), name
    steps = [gzip.decompress((folder / "scores" / "test_steps.csv.gz").read_bytes()) for folder in folders]
    assert steps[0] == steps[1]
