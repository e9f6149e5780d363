"""The training report: one self-contained HTML page a customer-success leader can open and forward.

No external CSS, scripts, fonts or images: the charts are embedded as PNG data URIs, so the page
reads the same from an email attachment, a shared drive or an air-gapped laptop.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from training.backtest import Evaluation
from training.baselines import LIGHTGBM, MODEL_LABELS
from training.metrics import LOWER_IS_BETTER, METRIC_LABELS, SCORE_METRICS, THRESHOLD_METRICS, as_number
from training.plots import evaluation_pngs, period_label

# A workload, not a quality: fewer alerts is not "better" if they miss churners, so no row winner.
NO_BEST = {"alerts_per_week"}
PERCENT_METRICS = {"precision", "recall", "calibration_error", "base_rate"}
TOP_FEATURES = 20

FIGURES = (
    ("gains.png", "Churners caught by contacting the riskiest customers first"),
    ("lift.png", "Lift by tenth of customers"),
    ("roc.png", "ROC curve"),
    ("precision_recall.png", "Precision and recall"),
    ("calibration.png", "Calibration: predicted against actual churn"),
    ("folds.png", "Quality per backtest period"),
    ("importance.png", "What drives the risk score"),
)

DATASET_LABELS = {
    "source": "Source",
    "rows": "Snapshot rows",
    "customers": "Customers",
    "churned": "Rows that churned within the horizon",
    "churn_rate": "Churn rate",
    "features": "Signals per row",
    "days": "Snapshot dates",
    "from": "First snapshot",
    "to": "Last snapshot",
    "horizon_days": "Churn horizon (days)",
}

STYLE = """
body { font: 15px/1.5 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #1f2933;
       max-width: 1080px; margin: 2em auto; padding: 0 1.2em; }
h1 { font-size: 1.7em; margin-bottom: .2em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #d9dee3; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .6em 0 1em; }
th, td { padding: .3em .7em; border-bottom: 1px solid #e4e7eb; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
thead th { background: #f5f7fa; }
.details th { font-weight: normal; color: #52606d; }
.headline { font-size: 1.2em; background: #eef6ff; border-left: 4px solid #2f80ed; padding: .7em 1em; }
.warning { background: #fff4e5; border-left: 4px solid #e67700; padding: .6em 1em; margin: .6em 0; }
.verdict li { margin: .2em 0; }
.muted { color: #616e7c; font-size: .9em; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e4e7eb; }
figcaption { color: #52606d; font-size: .9em; }
code { font-size: .9em; }
"""


def render_report(
    evaluation: Evaluation,
    predictions: pd.DataFrame,
    *,
    title: str,
    details: dict[str, str],
    pngs: dict[str, bytes] | None = None,
    extra_sections: Sequence[str] = (),
) -> str:
    """The whole training report as one HTML page with its charts embedded.

    ``pngs`` are the charts already drawn for this evaluation (as ``evaluation_pngs`` draws them);
    without them they are drawn here. ``extra_sections`` are HTML fragments from later stages (the
    alert-policy replay), placed before the reading guide.
    """
    pngs = evaluation_pngs(evaluation, predictions) if pngs is None else pngs
    images = {name: _data_uri(png) for name, png in pngs.items()}
    sections = [
        f"<h1>{_e(title)}</h1>",
        _details_table(details),
        _headline(evaluation, predictions),
        _verdict(evaluation.verdict),
        "<h2>How the models compare</h2>",
        _metrics_table(evaluation),
        "<h2>Each backtest period</h2>",
        _folds_table(evaluation),
        "<h2>Charts</h2>",
        *(_figure(images[name], caption) for name, caption in FIGURES if name in images),
        "<h2>What drives the risk score</h2>",
        _importance_table(evaluation.importance),
        "<h2>The data</h2>",
        _dataset_table(evaluation.dataset),
        *extra_sections,
        "<h2>How to read this</h2>",
        _how_to_read(evaluation),
    ]
    return html_page(title, sections)


def html_page(title: str, sections: Sequence[str]) -> str:
    """A self-contained page in the reports' style: the non-empty sections, in order."""
    body = "\n".join(section for section in sections if section)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def write_report(path: Path, html: str) -> Path:
    """Write the report page, creating its folder; returns the path written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def format_metric(metric: str, value: object) -> str:
    """A metric as people read it: AUCs to 3 decimals, Brier and log loss to 4, lifts to 2, rates in
    percent, "—" if absent."""
    number = as_number(value)
    if math.isnan(number):
        return "—"
    if metric in PERCENT_METRICS:
        return _percent(number)
    if metric in ("brier", "log_loss"):
        return f"{number:.4f}"
    if metric == "top_decile_lift":
        return f"{number:.2f}"
    if metric == "alerts_per_week":
        return f"{number:.1f}"
    if metric == "median_lead_days":
        return f"{number:.0f}"
    return f"{number:.3f}"


def _percent(value: object) -> str:
    number = as_number(value)
    return "—" if math.isnan(number) else f"{number:.1%}"


def _details_table(details: dict[str, str]) -> str:
    if not details:
        return ""
    rows = "".join(f"<tr><th>{_e(key)}</th><td>{_e(value)}</td></tr>" for key, value in details.items())
    return f'<table class="details">{rows}</table>'


def _served(evaluation: Evaluation) -> str | None:
    if LIGHTGBM in evaluation.models:
        return LIGHTGBM
    return evaluation.models[0] if evaluation.models else None


def _base_rate(evaluation: Evaluation, predictions: pd.DataFrame, model: str) -> float:
    """The out-of-time churn rate the lift was measured against."""
    rate = as_number(evaluation.overall.get(model, {}).get("base_rate"))
    if math.isnan(rate) and "churned" in predictions.columns and len(predictions):
        rate = float(predictions["churned"].mean())
    if math.isnan(rate):
        rate = as_number(evaluation.dataset.get("churn_rate"))
    return rate


def _headline(evaluation: Evaluation, predictions: pd.DataFrame) -> str:
    model = _served(evaluation)
    if model is None:
        return ""
    lift = as_number(evaluation.overall.get(model, {}).get("top_decile_lift"))
    rate = _base_rate(evaluation, predictions, model)
    horizon = evaluation.dataset.get("horizon_days")
    within = f"within {horizon} days" if horizon else "within the churn horizon"
    if math.isnan(lift) or math.isnan(rate):
        text = "The backtest had too few churners to say how well the model ranks customers."
    else:
        text = (
            f"Out of every 10 customers this model flags as riskiest, {_tenths(10 * lift * rate)} churned "
            f"{within}, against {_tenths(10 * rate)} for a random 10."
        )
    return f'<p class="headline">{_e(text)}</p>'


def _tenths(value: float) -> str:
    return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"


def _verdict(lines: list[str]) -> str:
    if not lines:
        return ""
    warnings = "".join(
        f'<div class="warning"><strong>{_e(line)}</strong></div>' for line in lines if _warns(line)
    )
    others = "".join(f"<li>{_e(line)}</li>" for line in lines if not _warns(line))
    return warnings + (f'<ul class="verdict">{others}</ul>' if others else "")


def _warns(line: str) -> bool:
    return line.startswith("WARNING")


def _best(metric: str, values: list[float]) -> float | None:
    known = [v for v in values if not math.isnan(v)]
    if metric in NO_BEST or len(set(known)) < 2:  # nothing to pick between: no winner
        return None
    return min(known) if metric in LOWER_IS_BETTER else max(known)


def _metric_cells(metric: str, values: list[object]) -> str:
    numbers = [as_number(v) for v in values]
    best = _best(metric, numbers)
    cells = []
    for value, number in zip(values, numbers, strict=True):
        text = _e(format_metric(metric, value))
        cells.append(f'<td class="num">{f"<strong>{text}</strong>" if number == best else text}</td>')
    return "".join(cells)


def _metrics_table(evaluation: Evaluation) -> str:
    models = evaluation.models
    head = "".join(f'<th class="num">{_e(_label(m))}</th>' for m in models)
    rows = []
    for metric in (*SCORE_METRICS, *THRESHOLD_METRICS):
        values = [evaluation.overall.get(m, {}).get(metric) for m in models]
        name = METRIC_LABELS.get(metric, metric)
        hint = " (lower is better)" if metric in LOWER_IS_BETTER else ""
        rows.append(f"<tr><th>{_e(name)}{_e(hint)}</th>{_metric_cells(metric, values)}</tr>")
    caption = (
        f"All models scored on the same out-of-time rows. Alert threshold: {_percent(evaluation.threshold)} "
        "risk. The best value in each row is in bold."
    )
    return (
        f"<table><thead><tr><th>Measure</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f'<p class="muted">{_e(caption)}</p>'
    )


def _folds_table(evaluation: Evaluation) -> str:
    if not evaluation.folds:
        return '<p class="muted">No backtest periods were recorded.</p>'
    models = evaluation.models
    names = "".join(f'<th class="num">{_e(_label(m))}</th>' for m in models) * 2
    span = len(models)
    head = (
        '<tr><th rowspan="2">Test period</th><th rowspan="2">Trained on data up to</th>'
        '<th rowspan="2" class="num">Train rows</th><th rowspan="2" class="num">Test rows</th>'
        '<th rowspan="2" class="num">Churned</th>'
        f'<th colspan="{span}" class="num">PR AUC</th><th colspan="{span}" class="num">ROC AUC</th></tr>'
        f"<tr>{names}</tr>"
    )
    rows = []
    for fold in evaluation.folds:
        metrics = fold.get("metrics") or {}
        scores = "".join(
            _metric_cells(metric, [metrics.get(m, {}).get(metric) for m in models])
            for metric in ("pr_auc", "roc_auc")
        )
        rows.append(
            f"<tr><td>{_e(period_label(fold))}</td><td>{_e(fold.get('train_to') or '—')}</td>"
            f'<td class="num">{_e(_count(fold.get("train_rows")))}</td>'
            f'<td class="num">{_e(_count(fold.get("test_rows")))}</td>'
            f'<td class="num">{_e(_count(fold.get("test_churned")))}</td>{scores}</tr>'
        )
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _count(value: object) -> str:
    number = as_number(value)
    return "—" if math.isnan(number) else f"{number:,.0f}"


def _figure(uri: str, caption: str) -> str:
    return f'<figure><img src="{uri}" alt="{_e(caption)}"><figcaption>{_e(caption)}</figcaption></figure>'


def _importance_table(importance: list[dict[str, Any]]) -> str:
    top = sorted(importance, key=lambda row: -as_number(row.get("gain_share")))[:TOP_FEATURES]
    if not top:
        return '<p class="muted">No feature importance was recorded.</p>'
    rows = "".join(
        f'<tr><td class="num">{rank}</td><td>{_e(row.get("description") or row.get("feature", ""))}</td>'
        f"<td><code>{_e(row.get('feature', ''))}</code></td>"
        f'<td class="num">{_e(_percent(row.get("gain_share")))}</td>'
        f'<td class="num">{_e(_count(row.get("splits")))}</td></tr>'
        for rank, row in enumerate(top, start=1)
    )
    return (
        '<table><thead><tr><th class="num">#</th><th>Signal</th><th>Column</th>'
        '<th class="num">Share of learning</th><th class="num">Splits</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
        '<p class="muted">How much of the model\'s learning each signal accounts for, across all customers. '
        "A large share means the model leans on it, not that it causes churn.</p>"
    )


def _dataset_table(dataset: dict[str, Any]) -> str:
    if not dataset:
        return '<p class="muted">No data summary was recorded.</p>'
    rows = []
    for key, value in dataset.items():
        if key == "churn_rate":
            shown = _percent(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            shown = _count(value)
        else:
            shown = "—" if value is None else str(value)
        rows.append(f"<tr><th>{_e(DATASET_LABELS.get(key, key))}</th><td>{_e(shown)}</td></tr>")
    return f'<table class="details">{"".join(rows)}</table>'


def _how_to_read(evaluation: Evaluation) -> str:
    horizon = evaluation.dataset.get("horizon_days")
    within = f"{horizon} days" if horizon else "the churn horizon"
    paragraphs = [
        "This is an out-of-time backtest. The history was cut into periods; for each period the models "
        "were trained only on earlier customers and dates, then scored the customers of that later period. "
        "Every figure on this page comes from customers the model did not see, scored on later dates, "
        "the way it will be used: so they are an honest estimate of how it will do next month, not of how "
        "well it memorised the past.",
        f"A customer counts as churned when they left within {within} of the date they were scored. "
        "Lift compares the churn rate among the customers the model ranks riskiest with the average rate: "
        "a lift of 3 means the riskiest tenth churns three times as often as a random tenth.",
        "Calibration asks whether the risk numbers can be taken at face value: among customers given about "
        "30% risk, about 30% should churn. On the calibration chart, points on the diagonal are well "
        "calibrated; points below it mean the model overstates risk, above it that it understates it. "
        "A model can rank customers well and still be poorly calibrated, which matters when the alert "
        "threshold is read as a probability.",
    ]
    return "".join(f"<p>{_e(text)}</p>" for text in paragraphs)
