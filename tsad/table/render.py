"""A table rendered: Markdown, LaTeX (booktabs) and a figure (heatmap of the means, average ranks)."""

from __future__ import annotations

from pathlib import Path

from tsad.table.summary import average_ranks


def cell_text(cell: dict | None, digits: int) -> tuple[str, list[str]]:
    """The number part and the annotations of one cell; blank when no run made it."""
    if cell is None:
        return "", []
    notes = [f"[{cell[key]} {word}]" for key, word in (("failed", "failed"), ("unfinished", "unfinished"),
                                                        ("missing", "n/a")) if cell[key]]
    if cell["mean"] is None:
        return "–", notes
    text = f"{cell['mean']:.{digits}f}"
    if cell["std"] is not None:
        text += f" ± {cell['std']:.{digits}f}"
    return text, [f"({cell['n']})", *notes]


def _is_best(table: dict, row: str, column: str, digits: int) -> bool:
    cell = table["cells"].get((row, column))
    best = table["best"].get(column)
    return cell is not None and cell["mean"] is not None and round(cell["mean"], digits) == round(best, digits)


def to_markdown(table: dict, digits: int = 3) -> str:
    header = [table["row_title"], *table["columns"]]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([" --- "] + [" ---: "] * len(table["columns"])) + "|"]
    for row in table["rows"]:
        texts = []
        for column in table["columns"]:
            number, notes = cell_text(table["cells"].get((row, column)), digits)
            if _is_best(table, row, column, digits):
                number = f"**{number}**"
            texts.append(" ".join([number, *notes]).strip())
        lines.append("| " + " | ".join([row, *texts]) + " |")
    return "\n".join(lines) + "\n\n" + "\n".join(table["caption"])


def _tex(text: str) -> str:
    for plain, escaped in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("&", r"\&"), ("%", r"\%"), ("#", r"\#"),
                           ("$", r"\$"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"),
                           ("^", r"\textasciicircum{}")):
        text = text.replace(plain, escaped)
    return text


def to_latex(table: dict, digits: int = 3) -> str:
    """A booktabs table; needs \\usepackage{booktabs} in the document."""
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             r"\begin{tabular}{l" + "r" * len(table["columns"]) + "}", r"\toprule",
             " & ".join(_tex(t) for t in [table["row_title"], *table["columns"]]) + r" \\", r"\midrule"]
    for row in table["rows"]:
        texts = []
        for column in table["columns"]:
            number, notes = cell_text(table["cells"].get((row, column)), digits)
            number = number.replace(" ± ", r" $\pm$ ").replace("–", "--")
            if _is_best(table, row, column, digits):
                number = rf"\textbf{{{number}}}"
            texts.append(" ".join([number, *(_tex(n) for n in notes)]).strip())
        lines.append(" & ".join([_tex(row), *texts]) + r" \\")
    caption = " ".join(_tex(line) for line in table["caption"]).replace("±", r"$\pm$")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{caption}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def plot_table(table: dict, path: Path) -> None:
    """Heatmap of the mean metric (rows × columns) and the average rank of each row across columns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows, columns = table["rows"], table["columns"]
    means = np.array([[(table["cells"].get((r, c)) or {}).get("mean") for c in columns] for r in rows], dtype=float)
    ranks = average_ranks(table)
    figure, (heat, rank) = plt.subplots(
        1, 2, figsize=(3 + 1.3 * len(columns) + 4, 1.2 + 0.45 * len(rows)),
        gridspec_kw={"width_ratios": [max(len(columns), 1) * 1.3 + 1.5, 4]})
    colormap = plt.get_cmap("viridis_r" if table["lower_is_better"] else "viridis").with_extremes(bad="#dddddd")
    image = heat.imshow(np.ma.masked_invalid(means), cmap=colormap, aspect="auto")
    heat.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
    heat.set_yticks(range(len(rows)), rows)
    finite = means[np.isfinite(means)]
    middle = (finite.min() + finite.max()) / 2 if len(finite) else 0
    for i in range(len(rows)):
        for j in range(len(columns)):
            if np.isfinite(means[i, j]):
                dark = (means[i, j] < middle) != table["lower_is_better"]
                heat.text(j, i, f"{means[i, j]:.3f}", ha="center", va="center", fontsize=8,
                          color="white" if dark else "black")
    figure.colorbar(image, ax=heat, fraction=0.046, pad=0.04)
    heat.set_title(table.get("title", f"{table['metric']}: mean over seeds"))
    names = [name for name, _, _ in ranks][::-1]
    rank.barh(names, [value for _, value, _ in ranks][::-1], color="#4477aa")
    for y, (_, value, count) in enumerate(ranks[::-1]):
        rank.text(value, y, f" {value:.2f} ({count})", va="center", fontsize=8)
    rank.set_xlim(0, len(rows) + 1)
    rank.set(xlabel=f"average rank over {len(columns)} {table['column_title']} column(s) (1 = best)",
             title="Average rank")
    rank.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
