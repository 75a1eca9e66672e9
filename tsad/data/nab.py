"""The Numenta Anomaly Benchmark (NAB) data: `dataset=nab`, its settings and its files (run under the NAB
protocol, tsad/protocols/nab.py).

NAB v1.1 holds 58 univariate series in 7 categories (data/<category>/<name>.csv, columns
timestamp,value) and their anomaly windows (labels/combined_windows.json, inclusive timestamp
pairs; tsad/data/nab_format.py reads them). The folder is `dataset.root`, else
$TSAD_DATA_DIR/NAB, else the per-user cache; missing files are downloaded there from the pinned
NAB commit (MIT licence) and checked against their sha256. Rows are identified by position:
files are never sorted or de-duplicated (some repeat timestamps or go back in time). A row is
labelled 1 when it lies inside a window.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tsad.data.locate import locate
from tsad.data.nab_format import WINDOWS_FILE, load_nab_windows, probationary_length, windows_to_rows
from tsad.data.registry import DatasetSettings, register_dataset
from tsad.errors import UserError
from tsad.settings.fields import setting

NAB_COMMIT = "ea702d75cc2258d9d7dd35ca8e5e2539d71f3140"
RAW_URL = f"https://raw.githubusercontent.com/numenta/NAB/{NAB_COMMIT}"
WINDOWS_SHA256 = "1e1fbc4601321aad8d0f8b3784c8134299379f68f6c1f7777565f8ffd57ab6b1"
# sha256 of every data file at the pinned commit, keyed by its name in the windows file.
DATA_SHA256 = {
    "artificialNoAnomaly/art_daily_no_noise.csv":
        "ccb7743ac2de8ca110db4af796d11ba31a23ad448a28e353a935c15f637756bc",
    "artificialNoAnomaly/art_daily_perfect_square_wave.csv":
        "662ff0a295b81eb0ff8e81116a54a497cd6f6b07c19c7a5ea72cce494913ce62",
    "artificialNoAnomaly/art_daily_small_noise.csv":
        "c4b304229f69f108eaa024fb2406fcd4510c5c5d95cd0053e2da6989682e4e6d",
    "artificialNoAnomaly/art_flatline.csv":
        "1cc10761ddd6d55fb5f0d9cfc73610416abbb120ee14bb65eff288509a463397",
    "artificialNoAnomaly/art_noisy.csv":
        "ad455adeaf06852222500955f2aefe6bd389cc762ef68e7102ee543209c8607f",
    "artificialWithAnomaly/art_daily_flatmiddle.csv":
        "ea5df125947e9ee2b977ac3d341f3c2a029588862af97cae4a654fc56e838702",
    "artificialWithAnomaly/art_daily_jumpsdown.csv":
        "4af31802e87dff4b4ba3ceb21714ba9d905f7888e1f53d47cc6dd4f856f9debc",
    "artificialWithAnomaly/art_daily_jumpsup.csv":
        "f79f92b93ee4f9c10e2dc552505e8880b0c618639ed5e0f9816e044b75c26456",
    "artificialWithAnomaly/art_daily_nojump.csv":
        "65c85d1834376ed5e622f01721d478609577ea0df0a067c5a5ebe5edea03b077",
    "artificialWithAnomaly/art_increase_spike_density.csv":
        "0959d8871d5c1a3fc3120fb7421e4ef113fffb434af2889085b52aebdb69360c",
    "artificialWithAnomaly/art_load_balancer_spikes.csv":
        "99f7130e54c7c3e818df8e3bdc0974cd241914bb14a10a9c3fa7c1374125d224",
    "realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv":
        "ab446fbd8b9f37507eb2fdb06315826d8daeef02e241133ce06e0ee571ba53d9",
    "realAWSCloudwatch/ec2_cpu_utilization_53ea38.csv":
        "8942e498de7b40f1b4a6d802755592c09b8fb73ce8f658763a09cb9ea1ea94ac",
    "realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv":
        "01613e6f632d067f11a5dfd40a188b0789752b388d9bc77a398bd06333878a76",
    "realAWSCloudwatch/ec2_cpu_utilization_77c1ca.csv":
        "90ceabd570b449241ee24ff8a116a793979b7671ce4490707311bfea0e0aae1f",
    "realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv":
        "d768419037c9db269343822957314f57ee21a7d9a4d41df2add0d1ba45ba84de",
    "realAWSCloudwatch/ec2_cpu_utilization_ac20cd.csv":
        "749a15c2e1a4543c21fee9cbf3338cd8a7ed5f5f8a1308b9b099b06c2c66e66b",
    "realAWSCloudwatch/ec2_cpu_utilization_c6585a.csv":
        "d936cea74682ed43ac96b778352d7de294c0b0c168f4a7e6817162346cdb28c1",
    "realAWSCloudwatch/ec2_cpu_utilization_fe7f93.csv":
        "f3433f8171f4dcea86c0c7af9996d0f166f812fa0f4567f1d5cd85d2d2cd69b4",
    "realAWSCloudwatch/ec2_disk_write_bytes_1ef3de.csv":
        "ce3d6c6a652ed7c31a6dd3727a36e128fcac6fb2381c63267ad0fbc02eccd9df",
    "realAWSCloudwatch/ec2_disk_write_bytes_c0d644.csv":
        "a0e734a66098bb81833835f0839dadafbc8ae829c51494670ee8849e46eb5b63",
    "realAWSCloudwatch/ec2_network_in_257a54.csv":
        "39104b08f2e0a673b5137eb7681897fcadf0955fedf565740a6a94edc63a81a4",
    "realAWSCloudwatch/ec2_network_in_5abac7.csv":
        "c27ef93f582af63bf42e80d804764cbe64ae987620f3cfab5477d6ebb3c6157e",
    "realAWSCloudwatch/elb_request_count_8c0756.csv":
        "74c26574a01ca9fb89dddb5021e2e13c3a93eb25dc640438a9acb1ceb00f1021",
    "realAWSCloudwatch/grok_asg_anomaly.csv":
        "86a0abe9d58e376858d2fd4f4a438f1997e24c64a09e5af03accd4e1b372ac47",
    "realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv":
        "f115fbe6542159eed5612445bfa620708a28ab6b41349d1432bb15c3a3b8414d",
    "realAWSCloudwatch/rds_cpu_utilization_cc0c53.csv":
        "d5df979ef85928769a016cd0f935919d8c2a113926e21e1eb3a5001d688760e2",
    "realAWSCloudwatch/rds_cpu_utilization_e47b3b.csv":
        "6b712b922ab3b3404c5a629d64a570c390c99471ee8b9b0ff7665f553fda92c1",
    "realAdExchange/exchange-2_cpc_results.csv":
        "d869ab165254f3ee77ee21fd9fab2be1d07c1f80b8133cf01bbaf2d768c2ac64",
    "realAdExchange/exchange-2_cpm_results.csv":
        "1f01b9438566d2fe1ac446faa202a395ac86db9240a1955bc1f118c8eada2a19",
    "realAdExchange/exchange-3_cpc_results.csv":
        "e70b24dba107a2589657cb3feb9ca5605b4f3f7de49ff445f32f5991bc0bdbe5",
    "realAdExchange/exchange-3_cpm_results.csv":
        "74d354a94fb1730e14b469c7c1c6e99c2ad69af53afdb85f65220bd3cf01ce4a",
    "realAdExchange/exchange-4_cpc_results.csv":
        "d4c13abd6f28594dc446f22106562ebe917fdbe76170f60a500c2a402ecc09e2",
    "realAdExchange/exchange-4_cpm_results.csv":
        "4e5c955b632145b77b93fba4a5e3bf615d47e00416e17091d64e05ae109c760e",
    "realKnownCause/ambient_temperature_system_failure.csv":
        "230b68ccca20f59d562afd5d24ad52939c9b784386bed0054018358bf9120581",
    "realKnownCause/cpu_utilization_asg_misconfiguration.csv":
        "58ba65dc0737cfbac11b51514476d50c438d44011232144bb8d93f392df58f9f",
    "realKnownCause/ec2_request_latency_system_failure.csv":
        "98378580aa80157e057c61d59d81daddccc6c65a2c0c800e3f01f603b8215c3f",
    "realKnownCause/machine_temperature_system_failure.csv":
        "92bf5b87fc7f9bba8ca0b7ec63ccaac8cb4a1371a258e8c29a10ae9c018d82a4",
    "realKnownCause/nyc_taxi.csv":
        "d8fa6f7f0734bf5c8be12c52a94e20a82664c397d9dec4449156bd453d32856d",
    "realKnownCause/rogue_agent_key_hold.csv":
        "47b110baa8e3636574c1033dda1cce780873647fab58223d159d4fee6f180e86",
    "realKnownCause/rogue_agent_key_updown.csv":
        "9797cfef477c13306f7a33874ab4d6cf700f8f2c7e5825a2a5bc02004370909a",
    "realTraffic/TravelTime_387.csv":
        "38e70e9ead8227fd023bff6e93247d5bc01ee008f781b921a156962419b399bb",
    "realTraffic/TravelTime_451.csv":
        "7c174adfc457b201cd111d60688f7ec37eb7201c8080790dc41eeff477bd7345",
    "realTraffic/occupancy_6005.csv":
        "cd357d7820d675074270fd976d4af1fc1e7854ecb764783028cbcb18d980c91d",
    "realTraffic/occupancy_t4013.csv":
        "5663a8122a300360eb51fbbd0f21706da05af1af55262926d6a226bb6d071704",
    "realTraffic/speed_6005.csv":
        "7976e7596cd1e579696c737576e96a26fe041484472ed7d0a463ce2b094d7aa7",
    "realTraffic/speed_7578.csv":
        "15ba994384730cb5a2e6818f17ded1430b40d92eb7a08e5b1a48a445c8c350f6",
    "realTraffic/speed_t4013.csv":
        "fa5532d6f7db36cadc73e657fd4dfef05cb1ec44d4010243b314d3f1bbd6a7b5",
    "realTweets/Twitter_volume_AAPL.csv":
        "826f5cf404c2890784a7824f7102fd00cb134a4948e12e44ec320d095cbbc217",
    "realTweets/Twitter_volume_AMZN.csv":
        "234f5e63f19a62720dfb7ccfd6ecc8349b94d93b33ef8aafbdb17edda0b654f3",
    "realTweets/Twitter_volume_CRM.csv":
        "e7133bf26479623d58fc7367107aea1cd7df6020420dece48b0eee4d26cdb28a",
    "realTweets/Twitter_volume_CVS.csv":
        "f0bdc89cba3dd2265b47069187c750eeae18ef48f76f86067ee26ea1af9c3114",
    "realTweets/Twitter_volume_FB.csv":
        "a7096bd646759486bda6796b5600cd33a4590f0842bf274ea7acba001b3ba591",
    "realTweets/Twitter_volume_GOOG.csv":
        "3a39cc23d1ff6a0f234b55298d0c46c21d2e94ddb81a0dad9e1e46e3aaa9ec90",
    "realTweets/Twitter_volume_IBM.csv":
        "4309bd56d28ddcbdc168e207da9717395fa2e9f74dba41fa768e0f7da8a116fa",
    "realTweets/Twitter_volume_KO.csv":
        "f3aa8157043c6569911031535bd1f7a73b428b5a2d95238d79b9d5b88ceebbd2",
    "realTweets/Twitter_volume_PFE.csv":
        "18d2804d6a5dae63fe711baaba9242dce38a32bfade3dcdee1d8a7c1a866e41b",
    "realTweets/Twitter_volume_UPS.csv":
        "be50f06bbb9d020f37653c8c5cf19af63f77aa0019d8cf10849d91f4af455af4",
}


@dataclass
class NABFile:
    """One NAB series: rows in file order, its windows as timestamps and as inclusive row pairs."""

    name: str  # "<category>/<file>.csv", as in the windows file
    timestamps: np.ndarray  # [T] strings as written in the file
    values: np.ndarray  # [T] float64
    windows: list[tuple[str, str]]
    window_rows: list[tuple[int, int]]

    @property
    def category(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def labels(self) -> np.ndarray:
        labels = np.zeros(len(self.values), dtype=np.int64)
        for first, last in self.window_rows:
            labels[first:last + 1] = 1
        return labels

    @property
    def probation(self) -> int:
        return probationary_length(len(self.values))


@dataclass
class NABCorpus:
    """The selected files of a NAB folder and where it is."""

    folder: Path
    files: list[NABFile]


@register_dataset("nab")
@dataclass(frozen=True)
class NABSettings(DatasetSettings):
    """Which NAB files a run reads and how the NAB protocol runs over them."""

    family: str = "nab"
    name: str = "nab"
    level: str = setting("point", choices=("point",))
    protocol: str = setting("nab", choices=("nab",))  # online: a fresh detector per file, scored causally
    root: str | None = None  # a NAB copy with data/ and labels/; null: $TSAD_DATA_DIR/NAB or the cache
    category: str | tuple[str, ...] | None = None  # a category or a list of them; null: every file
    files: str | tuple[str, ...] | None = None  # <category>/<name>.csv files; null: see category
    retrain_every: int | None = setting(None, at_least=1)  # refit on all rows so far every N rows; null: never
    # NAB scores each profile at its own threshold: these are the low-FP and low-FN profiles' label-free thresholds
    # (anomaly score >= it, with threshold=fixed, whose threshold.value is the standard profile's); null: that value
    low_fp_threshold: float | None = setting(None, at_least=0, at_most=1)
    low_fn_threshold: float | None = setting(None, at_least=0, at_most=1)

    def check(self) -> None:
        if self.category is not None and self.files is not None:
            raise UserError("set either dataset.category or dataset.files, not both")
        if self.files is not None:
            chosen = csv_names(self.files)
            if not chosen:
                raise UserError("dataset.files is empty; list files or set it to null for the whole corpus")
            if len(set(chosen)) < len(chosen):
                raise UserError("dataset.files lists a file twice; list each file once")
        if self.category is not None and not self.category:
            raise UserError("dataset.category is an empty list; name a category or set it to null for every file")

    def profile_thresholds(self) -> dict[str, float]:
        """{NAB profile: its own label-free threshold} for the profiles given one."""
        given = {"reward_low_FP_rate": self.low_fp_threshold, "reward_low_FN_rate": self.low_fn_threshold}
        return {profile: value for profile, value in given.items() if value is not None}

    def load(self) -> NABCorpus:
        """The selected NAB files: all of them, those of one or more categories, or the listed files."""
        folder = locate("NAB", self.root, {WINDOWS_FILE: f"{RAW_URL}/{WINDOWS_FILE}"}, {WINDOWS_FILE: WINDOWS_SHA256})
        windows = load_nab_windows(folder)
        names = select_files(sorted(windows), self.category, self.files)
        data_paths = {f"data/{name}": name for name in names}
        locate("NAB", self.root, {path: f"{RAW_URL}/{path}" for path in data_paths},
               {path: DATA_SHA256[name] for path, name in data_paths.items() if name in DATA_SHA256})
        return NABCorpus(folder, [read_nab_file(folder, name, windows[name]) for name in names])


def csv_names(files: str | tuple[str, ...]) -> list[str]:
    """dataset.files as file names of the windows file (the .csv suffix may be left out)."""
    wanted = [files] if isinstance(files, str) else list(files)
    return [name if name.endswith(".csv") else f"{name}.csv" for name in wanted]


def select_files(corpus: list[str], category, files) -> list[str]:
    """File names in corpus order for a category (or list of them), or the given files in their order."""
    if files is not None:
        chosen = csv_names(files)
        unknown = [name for name in chosen if name not in corpus]
        if unknown:
            raise UserError(f"dataset.files: {unknown[0]} is not a NAB file; name files as <category>/<name>.csv, "
                            f"e.g. {corpus[0]}")
        return chosen
    if category is None:
        return list(corpus)
    categories = [category] if isinstance(category, str) else list(category)
    known = sorted({name.split("/", 1)[0] for name in corpus})
    unknown = [c for c in categories if c not in known]
    if unknown:
        raise UserError(f"dataset.category={unknown[0]} is not a NAB category; choose from {', '.join(known)}")
    return [name for name in corpus if name.split("/", 1)[0] in categories]


def read_nab_file(folder: Path, name: str, windows: list[tuple[str, str]]) -> NABFile:
    """data/<name> of a NAB folder, rows as written, with its windows."""
    path = Path(folder) / "data" / name
    try:
        table = pd.read_csv(path, dtype={"timestamp": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read it as CSV ({type(error).__name__}); restore it from NAB") from None
    if list(table.columns[:2]) != ["timestamp", "value"]:
        raise UserError(f"{path}: the header must start with timestamp,value (NAB's format), "
                        f"got {','.join(map(str, table.columns))}")
    values = pd.to_numeric(table["value"], errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        row = int(np.argmin(np.isfinite(values)))
        raise UserError(f"{path}: row {row} has no finite value; NAB files hold a number in every row")
    timestamps = table["timestamp"].to_numpy()
    return NABFile(name, timestamps, values, list(windows), windows_to_rows(timestamps, windows, name))
