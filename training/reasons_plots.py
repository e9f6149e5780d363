"""The reasons report's charts: where churn comes from, month by month and segment by segment.

Standalone ``Figure`` objects on Agg (as ``training/plots.py`` draws them): no pyplot, no display needed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from training.plots import figure_png, new_figure

NO_REASON = "no reason given"


def reason_pngs(churns: pd.DataFrame, labels: dict[str, str]) -> dict[str, bytes]:
    """Every chart of the reasons report as PNG bytes, keyed by file name (none without churns)."""
    if churns.empty:
        return {}
    figures = {
        "reasons_by_month.png": _stacked(
            churns, "month", labels, title="Churns per month, by reason", xlabel="Month the customer left"
        ),
        "reasons_by_segment.png": _stacked(
            churns, "segment", labels, title="Churns per segment, by reason", xlabel="Segment"
        ),
        "voluntary.png": _stacked(
            churns, "kind", labels, title="Voluntary and involuntary churn, by reason", xlabel=""
        ),
        "recovered.png": _recovered(churns, labels),
    }
    return {name: figure_png(figure) for name, figure in figures.items()}


def _order(reasons: pd.Series, labels: dict[str, str]) -> list[str]:
    """Taxonomy order, then codes the taxonomy no longer has, then 'other', then no reason."""
    present = set(reasons)
    tail = [code for code in ("other", NO_REASON) if code in present]
    known = [code for code in labels if code in present and code not in tail]
    orphans = sorted(present - set(known) - set(tail))
    return [*known, *orphans, *tail]


def _name(code: str, labels: dict[str, str]) -> str:
    if code == NO_REASON:
        return "No reason given"
    return labels.get(code, f"{code} (not in the taxonomy)")


def _colour(code: str, order: list[str]) -> str:
    if code == NO_REASON:
        return "0.8"
    if code == "other":
        return "0.55"
    return f"C{order.index(code) % 10}"


def _stacked(churns: pd.DataFrame, by: str, labels: dict[str, str], *, title: str, xlabel: str) -> Figure:
    counts = pd.crosstab(churns[by].fillna("unknown"), churns["reason"])
    order = _order(churns["reason"], labels)
    counts = counts.reindex(columns=order, fill_value=0)
    width = 9.0 if by == "month" else 6.8
    figure = new_figure(width=width, height=4.8)
    ax: Axes = figure.add_subplot()
    places = np.arange(len(counts))
    bottom = np.zeros(len(counts))
    for code in order:
        values = counts[code].to_numpy(dtype=float)
        ax.bar(places, values, bottom=bottom, color=_colour(code, order), label=_name(code, labels))
        bottom += values
    rotate = 45 if by == "month" and len(counts) > 6 else 0
    ax.set_xticks(places, [str(v) for v in counts.index], rotation=rotate, ha="right" if rotate else "center")
    ax.set(title=title, xlabel=xlabel, ylabel="Customers who churned")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return figure


def _recovered(churns: pd.DataFrame, labels: dict[str, str]) -> Figure:
    """Reasons as the customers coded them, beside the reasons after the classifier's and reps' fills."""
    order = _order(pd.concat([churns["stated"], churns["reason"]]), labels)
    before = churns["stated"].value_counts().reindex(order, fill_value=0)
    after = churns["reason"].value_counts().reindex(order, fill_value=0)
    figure = new_figure(width=8.0, height=max(3.0, 0.9 + 0.42 * len(order)))
    ax = figure.add_subplot()
    places = np.arange(len(order))
    ax.barh(places - 0.2, before.to_numpy(), height=0.4, color="0.6", label="Code the cancellation carried")
    ax.barh(places + 0.2, after.to_numpy(), height=0.4, color="C0", label="After the classifier's fills")
    ax.set_yticks(places, [_name(code, labels) for code in order], fontsize="small")
    ax.invert_yaxis()
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set(title="Reasons before and after classifying the customers' words", xlabel="Churns")
    ax.legend(loc="lower right", fontsize="small")
    return figure
