"""The report's charts, drawn from out-of-time predictions: how well risk ranks customers and how true it is.

Every chart is a standalone ``matplotlib.figure.Figure`` on an Agg canvas: no pyplot and no global
backend switch, so charts can be drawn from several threads and on machines without a display.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from training.backtest import Evaluation
from training.baselines import MODEL_LABELS
from training.metrics import as_number, reliability

TOP_FEATURES = 20
DPI = 110
GUIDE = {"color": "0.55", "linestyle": "--", "linewidth": 1}  # diagonals, base rates, "random" lines


def evaluation_figures(evaluation: Evaluation, predictions: pd.DataFrame) -> dict[str, Figure]:
    """Every chart of the training report, keyed by its file name."""
    draw: dict[str, Callable[[Axes], None]] = {
        "roc.png": lambda ax: _roc(ax, evaluation.models, predictions),
        "precision_recall.png": lambda ax: _precision_recall(ax, evaluation.models, predictions),
        "calibration.png": lambda ax: _calibration(ax, evaluation.models, predictions),
        "gains.png": lambda ax: _gains(ax, evaluation.models, predictions),
        "lift.png": lambda ax: _lift(ax, evaluation.models, predictions),
        "importance.png": lambda ax: _importance(ax, evaluation.importance),
        "folds.png": lambda ax: _folds(ax, evaluation),
    }
    figures = {}
    for name, drawing in draw.items():
        height = _importance_height(evaluation.importance) if name == "importance.png" else 4.8
        figure = new_figure(width=8.0 if name == "importance.png" else 6.8, height=height)
        drawing(figure.add_subplot())
        figures[name] = figure
    return figures


def evaluation_pngs(evaluation: Evaluation, predictions: pd.DataFrame) -> dict[str, bytes]:
    """Every chart of ``evaluation_figures`` as PNG bytes, keyed by file name."""
    return {name: figure_png(figure) for name, figure in evaluation_figures(evaluation, predictions).items()}


def figure_png(figure: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def new_figure(*, width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)  # attaches itself: savefig renders with Agg whatever the global backend
    return figure


def _label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def _columns(models: list[str], predictions: pd.DataFrame) -> list[tuple[int, str, np.ndarray, np.ndarray]]:
    """(colour index, model, churned, risk) per model the predictions hold, rows without a risk dropped."""
    out = []
    for index, model in enumerate(models):
        if model not in predictions.columns or "churned" not in predictions.columns:
            continue
        risk = pd.to_numeric(predictions[model], errors="coerce").to_numpy(dtype="float64")
        label = predictions["churned"].to_numpy(dtype="float64")
        known = ~(np.isnan(risk) | np.isnan(label))
        out.append((index, model, label[known].astype("int64"), risk[known]))
    return out


def _both_classes(label: np.ndarray) -> bool:
    return 0 < label.sum() < len(label)


def _skipped(ax: Axes, index: int, model: str, why: str) -> None:
    """An empty legend entry saying why a model has no curve, instead of failing the whole report."""
    ax.plot([], [], color=f"C{index}", label=f"{_label(model)}: {why}")


def _roc(ax: Axes, models: list[str], predictions: pd.DataFrame) -> None:
    for index, model, label, risk in _columns(models, predictions):
        if not _both_classes(label):
            _skipped(ax, index, model, "no curve, test rows are all one outcome")
            continue
        false_alarms, caught, _ = roc_curve(label, risk)
        ax.plot(
            false_alarms,
            caught,
            color=f"C{index}",
            label=f"{_label(model)} (AUC {roc_auc_score(label, risk):.3f})",
        )
    ax.plot([0, 1], [0, 1], **GUIDE, label="Random order (AUC 0.500)")
    ax.set(
        title="How well risk separates churners from customers who stay",
        xlabel="Share of staying customers flagged (false alarms)",
        ylabel="Share of churners flagged",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right", fontsize="small")


def _precision_recall(ax: Axes, models: list[str], predictions: pd.DataFrame) -> None:
    base_rate = math.nan
    for index, model, label, risk in _columns(models, predictions):
        if len(label):
            base_rate = float(label.mean())
        if not _both_classes(label):
            _skipped(ax, index, model, "no curve, test rows are all one outcome")
            continue
        precision, recall, _ = precision_recall_curve(label, risk)
        ax.plot(
            recall,
            precision,
            color=f"C{index}",
            drawstyle="steps-post",
            # average precision: the same "PR AUC" the metrics table shows
            label=f"{_label(model)} (PR AUC {average_precision_score(label, risk):.3f})",
        )
    if not math.isnan(base_rate):
        ax.axhline(base_rate, **GUIDE, label=f"Churn rate, flagging at random ({base_rate:.1%})")
    ax.set(
        title="Accuracy of flags against share of churners caught",
        xlabel="Share of churners caught",
        ylabel="Share of flagged customers who churned",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="upper right", fontsize="small")


def _calibration(ax: Axes, models: list[str], predictions: pd.DataFrame) -> None:
    highest = 0.0
    for index, model, label, risk in _columns(models, predictions):
        if not len(label):
            _skipped(ax, index, model, "no predictions")
            continue
        points = reliability(label, risk)
        highest = max(highest, float(points[["predicted", "observed"]].to_numpy().max()))
        ax.plot(points["predicted"], points["observed"], marker="o", color=f"C{index}", label=_label(model))
    # Churn risks are mostly small: zoom to where the points are rather than the whole 0-100% square.
    top = min(1.0, max(0.05, highest * 1.15))
    ax.plot([0, top], [0, top], **GUIDE, label="Perfectly calibrated")
    ax.set(
        title="Does a 30% risk mean 30% churn? (ten equal-size groups)",
        xlabel="Predicted churn risk",
        ylabel="Share who actually churned",
        xlim=(0, top),
        ylim=(0, top),
    )
    ax.legend(loc="upper left", fontsize="small")


def _gains(ax: Axes, models: list[str], predictions: pd.DataFrame) -> None:
    for index, model, label, risk in _columns(models, predictions):
        if not label.sum():
            _skipped(ax, index, model, "no churners to catch")
            continue
        ordered = label[np.argsort(-risk, kind="stable")]
        contacted = np.arange(len(ordered) + 1) / len(ordered)
        caught = np.concatenate([[0.0], np.cumsum(ordered) / ordered.sum()])
        ax.plot(contacted, caught, color=f"C{index}", label=_label(model))
    ax.plot([0, 1], [0, 1], **GUIDE, label="Contacting customers at random")
    ax.set(
        title="Churners caught by contacting the riskiest customers first",
        xlabel="Share of customers contacted, riskiest first",
        ylabel="Share of churners caught",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.xaxis.set_major_formatter(_percent)
    ax.yaxis.set_major_formatter(_percent)
    ax.legend(loc="lower right", fontsize="small")


def _lift(ax: Axes, models: list[str], predictions: pd.DataFrame) -> None:
    columns = [c for c in _columns(models, predictions) if c[2].sum()]
    width = 0.8 / max(len(columns), 1)
    for place, (index, model, label, risk) in enumerate(columns):
        deciles = np.array_split(np.argsort(-risk, kind="stable"), min(10, len(label)))
        lift = [label[part].mean() / label.mean() for part in deciles if len(part)]
        x = np.arange(1, len(lift) + 1) + (place - (len(columns) - 1) / 2) * width
        ax.bar(x, lift, width=width, color=f"C{index}", label=_label(model))
    for index, model, label, _ in _columns(models, predictions):
        if not label.sum():
            _skipped(ax, index, model, "no churners, no lift")
    ax.axhline(1.0, **GUIDE, label="Random (lift 1)")
    ax.set(
        title="How many times the average churn rate, per tenth of customers",
        xlabel="Tenth of customers by risk (1 = riskiest 10%)",
        ylabel="Churn rate over the average churn rate",
        xticks=range(1, 11),
    )
    ax.legend(loc="upper right", fontsize="small")


def _importance(ax: Axes, importance: list[dict[str, object]]) -> None:
    top = sorted(importance, key=lambda row: -as_number(row.get("gain_share")))[:TOP_FEATURES]
    if not top:
        ax.text(0.5, 0.5, "No feature importance was recorded", ha="center", va="center")
        ax.set_axis_off()
        return
    names = [_feature_name(row) for row in top]
    shares = [as_number(row.get("gain_share")) for row in top]
    places = np.arange(len(top))
    ax.barh(places, shares, color="C0")
    ax.set_yticks(places, names, fontsize="small")
    ax.invert_yaxis()  # the most important feature on top
    ax.xaxis.set_major_formatter(_percent)
    ax.set(
        title=f"What drives the risk score (top {len(top)} signals)",
        xlabel="Share of the model's learning from this signal",
    )


def _importance_height(importance: list[dict[str, object]]) -> float:
    return max(3.0, 0.9 + 0.34 * min(len(importance), TOP_FEATURES))


def _feature_name(row: dict[str, object]) -> str:
    description = str(row.get("description") or "").strip()
    return textwrap.shorten(description or str(row.get("feature", "?")), width=60, placeholder="…")


def _folds(ax: Axes, evaluation: Evaluation) -> None:
    folds = evaluation.folds
    if not folds:
        ax.text(0.5, 0.5, "No backtest periods were recorded", ha="center", va="center")
        ax.set_axis_off()
        return
    width = 0.8 / max(len(evaluation.models), 1)
    places = np.arange(len(folds))
    for index, model in enumerate(evaluation.models):
        values = [as_number((fold.get("metrics") or {}).get(model, {}).get("pr_auc")) for fold in folds]
        x = places + (index - (len(evaluation.models) - 1) / 2) * width
        ax.bar(x, values, width=width, color=f"C{index}", label=_label(model))
    ax.set_xticks(places, [period_label(fold, between="\nto ") for fold in folds], fontsize="small")
    ax.set(
        title="Ranking quality in each backtest period (PR AUC, higher is better)",
        xlabel="Test period (the model never saw these customers' outcomes)",
        ylabel="PR AUC",
        ylim=(0, 1),
    )
    ax.legend(loc="upper right", fontsize="small")


def period_label(fold: dict[str, object], between: str = " to ") -> str:
    """A backtest fold named by its test dates ("2024-03-04 to 2024-04-01"), or by number without."""
    start, end = fold.get("test_from"), fold.get("test_to")
    if start and end:
        return f"{start}{between}{end}" if start != end else str(start)
    return f"fold {fold.get('fold', '?')}"


def _percent(value: float, _position: int) -> str:
    return f"{value:.0%}"
