"""What the settings of several dataset families share: their checks across keys, and labelled_val's meaning."""

from __future__ import annotations

from tsad.errors import UserError


def check_anomaly_types(anomaly_types: tuple[str, ...], known: tuple[str, ...]) -> None:
    """dataset.anomaly_types must list at least one of `known` and nothing else."""
    unknown = [kind for kind in anomaly_types if kind not in known]
    if unknown or not anomaly_types:
        raise UserError(f"dataset.anomaly_types: unknown {unknown or 'empty list'}; choose from {', '.join(known)}")


def check_labelled_val(labelled_val: float, of_what: str) -> None:
    """dataset.labelled_val is 0 (none), a fraction below 1 of `of_what`, or a whole number of series."""
    if labelled_val >= 1 and not float(labelled_val).is_integer():
        raise UserError(f"dataset.labelled_val={labelled_val} is neither a fraction below 1 of {of_what} nor a whole "
                        f"number of series; use e.g. 0.3 or 3")


def labelled_val_count(labelled_val: float, total: int) -> int:
    """dataset.labelled_val as a number of series: below 1 a fraction of `total`, else a count; 0 asks for none."""
    if labelled_val >= 1:
        return int(labelled_val)
    return max(1, int(round(labelled_val * total))) if labelled_val > 0 else 0
