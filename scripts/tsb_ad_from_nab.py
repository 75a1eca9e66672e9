"""Write TSB-AD-U's NAB series from a NAB copy, in TSB-AD's format and under TSB-AD's names.

    python scripts/tsb_ad_from_nab.py --nab ../shared/data/nab --out /tmp/tsb_ad_u
    python scripts/tsb_ad_from_nab.py --nab ../shared/data/nab --out tests/data/tsb_ad --ids 3 4 7 12 21 \
        --rows-after-first 100
    python scripts/tsb_ad_from_nab.py --nab ../shared/data/nab --check-sample 001_NAB_..._2014.csv

TSB-AD-U's 28 NAB files (names from tsad/data/tsb_ad_lists/TSB-AD-U.csv) are NAB data files with the first data row
dropped and `Label` 1 at rows whose timestamp lies inside one of NAB's windows, start excluded and end included;
values are written as NAB wrote them. Each file's first labelled row is checked against its name's `1st`, and
--check-sample compares the derivation with a file TSB-AD distributes (same rows and labels; values to 1e-12
relative: TSB-AD wrote some of NAB's numbers a few units in the last place apart, e.g. 45.752 for NAB's
45.751999999999995).

Which NAB file each id is was worked out from the names' `1st` and domain and, for the files on the Eva list, from
the series length, anomaly length and event count in TSB-AD's per-file results table. TSB-AD shortened three of
them (rows counted after the first row is dropped): id 2 keeps the first 6000 rows, id 10 the first 1000, id 27
starts at row 1000. Ids 12, 15 and 24 are art_daily_jumpsdown, art_daily_jumpsup and art_daily_nojump in some
order (identical windows and lengths; assigned here alphabetically), and the length of id 3 is unknown (the whole
NAB file is used). For ids 11, 15, 20, 22, 24 and 28 TSB-AD's table gives a longer anomaly length than NAB's
windows do, so TSB-AD's own files may label more rows there: use TSB-AD's archive for numbers to set beside its
leaderboard.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tsad.data.nab_format import load_nab_windows
from tsad.data.tsb_ad import list_files, parse_name

EXIT_BAD_INPUT = 2
# TSB-AD id -> (NAB file, first row kept, rows kept or None for all), rows counted after the first one is dropped.
NAB_FILES = {
    1: ("realKnownCause/ec2_request_latency_system_failure.csv", 0, None),
    2: ("realTweets/Twitter_volume_GOOG.csv", 0, 6000),
    3: ("realTweets/Twitter_volume_CVS.csv", 0, None),
    4: ("realAWSCloudwatch/ec2_network_in_257a54.csv", 0, None),
    5: ("realTraffic/occupancy_6005.csv", 0, None),
    6: ("realKnownCause/nyc_taxi.csv", 0, None),
    7: ("realTraffic/occupancy_t4013.csv", 0, None),
    8: ("artificialWithAnomaly/art_load_balancer_spikes.csv", 0, None),
    9: ("realTraffic/TravelTime_451.csv", 0, None),
    10: ("realAdExchange/exchange-3_cpc_results.csv", 0, 1000),
    11: ("realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv", 0, None),
    12: ("artificialWithAnomaly/art_daily_jumpsdown.csv", 0, None),
    13: ("realTraffic/speed_t4013.csv", 0, None),
    14: ("realAdExchange/exchange-3_cpm_results.csv", 0, None),
    15: ("artificialWithAnomaly/art_daily_jumpsup.csv", 0, None),
    16: ("realKnownCause/ambient_temperature_system_failure.csv", 0, None),
    17: ("artificialWithAnomaly/art_increase_spike_density.csv", 0, None),
    18: ("realKnownCause/rogue_agent_key_hold.csv", 0, None),
    19: ("realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv", 0, None),
    20: ("artificialWithAnomaly/art_daily_flatmiddle.csv", 0, None),
    21: ("realAdExchange/exchange-2_cpm_results.csv", 0, None),
    22: ("realAWSCloudwatch/rds_cpu_utilization_cc0c53.csv", 0, None),
    23: ("realKnownCause/cpu_utilization_asg_misconfiguration.csv", 0, None),
    24: ("artificialWithAnomaly/art_daily_nojump.csv", 0, None),
    25: ("realTweets/Twitter_volume_FB.csv", 0, None),
    26: ("realTraffic/speed_6005.csv", 0, None),
    27: ("realAWSCloudwatch/elb_request_count_8c0756.csv", 1000, None),
    28: ("realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv", 0, None),
}


def tsb_ad_nab_names() -> dict[int, str]:
    """TSB-AD-U's NAB file names by id."""
    names = [file for file in list_files("TSB-AD-U") if parse_name(file).source == "NAB"]
    return {int(file.split("_id_")[1].split("_")[0]): file for file in names}


def derive(nab: Path, nab_name: str, windows: list[tuple[str, str]], first_row: int = 0,
           rows: int | None = None) -> pd.DataFrame:
    """One NAB file as a TSB-AD table (Data as NAB wrote it, Label), TSB-AD's cut applied."""
    table = pd.read_csv(nab / "data" / nab_name, dtype=str).iloc[1:].reset_index(drop=True)
    times = pd.to_datetime(table["timestamp"]).to_numpy()
    labels = np.zeros(len(table), dtype=np.int64)
    for start, end in windows:
        labels[(times > np.datetime64(pd.Timestamp(start))) & (times <= np.datetime64(pd.Timestamp(end)))] = 1
    derived = pd.DataFrame({"Data": table["value"], "Label": labels}).iloc[first_row:]
    if rows is not None:
        derived = derived.iloc[:rows]
    return derived.reset_index(drop=True)


def checked(name: str, derived: pd.DataFrame) -> pd.DataFrame:
    expected = parse_name(name)
    labels = derived["Label"].to_numpy()
    first = int(np.argmax(labels)) if labels.any() else None
    if first != expected.first_anomaly:
        raise SystemExit(f"tsb_ad_from_nab.py: {name}: the derived first anomaly is row {first}, the name says "
                         f"{expected.first_anomaly}")
    if expected.train_end >= len(derived):
        raise SystemExit(f"tsb_ad_from_nab.py: {name}: tr_{expected.train_end} is past its {len(derived)} rows")
    return derived


def compare(derived: pd.DataFrame, sample: pd.DataFrame) -> tuple[bool, str]:
    """Whether the derivation equals TSB-AD's file: the same rows and labels, values equal to 1e-12 relative (TSB-AD's
    files hold NAB's numbers a few units in the last place apart, from its own float round trip)."""
    if list(sample.columns) != ["Data", "Label"] or len(sample) != len(derived):
        return False, f"different shape: {list(sample.columns)} x {len(sample)} rows, derived {len(derived)} rows"
    values, expected = derived["Data"].to_numpy(dtype=float), sample["Data"].to_numpy(dtype=float)
    if not (derived["Label"].to_numpy() == sample["Label"].to_numpy()).all():
        return False, f"labels differ at {int((derived['Label'] != sample['Label']).sum())} rows"
    if not np.allclose(values, expected, rtol=1e-12, atol=0):
        return False, f"values differ by up to {np.abs(values - expected).max():g}"
    return True, (f"equal: {len(sample)} rows, labels identical, values within "
                  f"{np.abs(values - expected).max():.1e} ({int((values != expected).sum())} not bit-identical)")


def write(derived: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as out:
        out.write("Data,Label\n")
        out.writelines(f"{value},{label}\n" for value, label in zip(derived["Data"], derived["Label"]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tsb_ad_from_nab.py", description=__doc__.splitlines()[0])
    parser.add_argument("--nab", required=True, type=Path, help="a NAB copy with data/ and labels/")
    parser.add_argument("--out", type=Path, help="folder to write the files into")
    parser.add_argument("--ids", type=int, nargs="+", help="TSB-AD ids to write (default: all 28)")
    parser.add_argument("--rows-after-first", type=int,
                        help="keep only the rows before 1st + N (short test files; the name stays valid)")
    parser.add_argument("--check-sample", type=Path, help="a TSB-AD NAB file to compare the derivation with")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = tsb_ad_nab_names()
    windows = load_nab_windows(args.nab)
    if args.check_sample is not None:
        name = args.check_sample.name
        nab_name, first_row, rows = NAB_FILES[int(name.split("_id_")[1].split("_")[0])]
        derived = checked(name, derive(args.nab, nab_name, windows[nab_name], first_row, rows))
        same, message = compare(derived, pd.read_csv(args.check_sample))
        print(f"{name} against {nab_name} derived: {message}")
        return 0 if same else 1
    if args.out is None:
        print("tsb_ad_from_nab.py: error: give --out FOLDER (or --check-sample FILE)", file=sys.stderr)
        return EXIT_BAD_INPUT
    for number in args.ids or sorted(names):
        if number not in names:
            print(f"tsb_ad_from_nab.py: error: TSB-AD-U has no NAB id {number}; ids are 1-28", file=sys.stderr)
            return EXIT_BAD_INPUT
        nab_name, first_row, rows = NAB_FILES[number]
        derived = checked(names[number], derive(args.nab, nab_name, windows[nab_name], first_row, rows))
        if args.rows_after_first is not None:
            derived = checked(names[number], derived.iloc[:parse_name(names[number]).first_anomaly
                                                            + args.rows_after_first])
        write(derived, args.out / names[number])
        print(f"{names[number]} <- {nab_name}: {len(derived)} rows, {int(derived['Label'].sum())} labelled 1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
