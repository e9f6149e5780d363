"""The reasons report: where churn comes from, what the classifier recovered, what each reason looks like.

Each churn takes one reason: the code its cancellation carried, else the classifier's fill from the
customer's words, else the reason a rep gave when marking the alert "customer is leaving", else "other"
(words nobody could place) or "no reason given". One self-contained HTML page, charts embedded as PNG.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Select, select

from churn.clock import utc_now
from churn.config import FeaturesConfig, ProductConfig
from churn.db import engine_for
from churn.settings import Settings
from churn.tables import alert_outcomes, cancellations, customers, reason_predictions
from features.catalogue import Unit, format_value
from features.labels import churn_events
from features.snapshot import built_days_in, describe, load_snapshots
from training.model import ChurnModel
from training.reasons_plots import NO_REASON, reason_pngs
from training.report import html_page, write_report

TOP_DRIVERS = 3
_UTC = "datetime64[ns, UTC]"
CHURN_COLUMNS = [
    "customer_id",
    "churned_at",
    "month",
    "segment",
    "cancellation_id",
    "stated",
    "has_text",
    "filled",
    "rep_code",
    "reason",
    "source",
    "kind",
]
FIGURES = (
    ("reasons_by_month.png", "Churns per month, by reason"),
    ("reasons_by_segment.png", "Churns per segment, by reason"),
    ("voluntary.png", "Voluntary and involuntary churn"),
    ("recovered.png", "What the classifier recovered from the customers' words"),
)


@dataclass(frozen=True)
class ReasonsReport:
    """A written reasons report: where it is, how many churns it covers, and what it could not show."""

    path: Path
    churns: int
    missing: list[str]


def reason_churns(connection: Connection, config: ProductConfig) -> pd.DataFrame:
    """Every churn with its segment, month, and its reason before and after the fills (``CHURN_COLUMNS``)."""
    churns = churn_events(connection, config.labels)[["customer_id", "churned_at", "cancellation_id"]]
    if churns.empty:
        return pd.DataFrame(columns=CHURN_COLUMNS)
    said = _frame(
        connection,
        select(
            cancellations.c.cancellation_id,
            cancellations.c.reason_code,
            cancellations.c.reason_text,
            cancellations.c.voluntary,
        ),
    )
    filled = _frame(
        connection,
        select(
            reason_predictions.c.cancellation_id,
            reason_predictions.c.confidence,
            reason_predictions.c.reason_code.label("filled"),
        ),
    )
    # A fill below the confidence floor is the classifier saying "I cannot tell": that is 'other'.
    filled.loc[filled["confidence"] < config.reasons.min_confidence, "filled"] = "other"
    segments = _frame(connection, select(customers.c.customer_id, customers.c.segment))
    out = (
        churns.merge(said, on="cancellation_id", how="left")
        .merge(filled.drop(columns="confidence"), on="cancellation_id", how="left")
        .merge(segments, on="customer_id", how="left")
    )
    out["rep_code"] = _rep_reasons(connection, out)
    code = out["reason_code"].where(out["reason_code"].notna(), None)
    text = out["reason_text"].fillna("").astype(str).str.strip()
    out["has_text"] = text.ne("")
    out["stated"] = code.fillna(NO_REASON)
    placed = code.notna() & code.ne("other")
    # The order the label policy trusts them in (features/labels.py), so the report shows what trains.
    machine = ~placed & out["filled"].notna() & out["filled"].ne("other")
    rep = ~placed & ~machine & out["rep_code"].notna()
    unclear = ~placed & ~rep & ~machine & (code.eq("other") | out["filled"].notna() | out["has_text"])
    out["reason"] = np.select(
        [placed, machine, rep, unclear], [code, out["filled"], out["rep_code"], "other"], NO_REASON
    )
    out["source"] = np.select([placed, machine, rep], ["customer", "classifier", "rep"], "none")
    taxonomy = config.reasons.taxonomy
    voluntary = out["voluntary"].astype("boolean")
    by_reason = out["reason"].map(lambda c: taxonomy[c].voluntary if c in taxonomy else None)
    voluntary = voluntary.fillna(by_reason.astype("boolean"))
    out["kind"] = np.where(
        voluntary.isna(), "Not known", np.where(voluntary.fillna(False), "Voluntary", "Involuntary")
    )
    out["month"] = out["churned_at"].dt.tz_convert("UTC").dt.strftime("%Y-%m")
    out["segment"] = out["segment"].fillna("No segment")
    return out[CHURN_COLUMNS].reset_index(drop=True)


def _rep_reasons(connection: Connection, churns: pd.DataFrame) -> pd.Series:
    """The reason a rep last gave for the customer leaving before each churn."""
    query = select(
        alert_outcomes.c.customer_id, alert_outcomes.c.created_at, alert_outcomes.c.reason_code
    ).where(alert_outcomes.c.outcome == "churning", alert_outcomes.c.reason_code.is_not(None))
    given = _frame(connection, query)
    if given.empty:
        return pd.Series([None] * len(churns), index=churns.index, dtype=object)
    given["created_at"] = pd.to_datetime(given["created_at"], utc=True)
    # As the label policy reads them: said before this churn, and after the customer's previous one.
    ordered = churns[["customer_id", "churned_at"]].sort_values("churned_at", kind="stable")
    ordered["previous"] = ordered.groupby("customer_id")["churned_at"].shift(1)
    pairs = ordered.reset_index().merge(given, on="customer_id")
    near = pairs[
        (pairs["created_at"] <= pairs["churned_at"])
        & (pairs["previous"].isna() | (pairs["created_at"] > pairs["previous"]))
    ]
    latest = near.sort_values("created_at", kind="stable").drop_duplicates("index", keep="last")
    return latest.set_index("index")["reason_code"].reindex(churns.index).astype(object)


def reason_drivers(
    connection: Connection,
    churns: pd.DataFrame,
    features_config: FeaturesConfig,
    model: ChurnModel | None = None,
) -> pd.DataFrame:
    """Per reason, the signals at the churners' last snapshot that differ most from customers who stayed.

    Columns: reason, churners, feature, description, churners_value, stayers_value, difference (in
    standard deviations), and, with a model, champion_push (its mean log-odds push for those churners).
    """
    columns = [
        "reason",
        "churners",
        "feature",
        "description",
        "churners_value",
        "stayers_value",
        "difference",
        "champion_push",
    ]
    days = built_days_in(connection)
    if churns.empty or not days:
        return pd.DataFrame(columns=columns)
    snapshots = load_snapshots(connection, days)
    snapshots["customer_id"] = snapshots["customer_id"].astype(object)
    snapshots["as_of"] = pd.to_datetime(snapshots["as_of"]).dt.tz_localize("UTC").astype(_UTC)
    churned = churns[["customer_id", "churned_at", "reason"]].astype(
        {"customer_id": object, "churned_at": _UTC}
    )
    last = pd.merge_asof(
        churned.sort_values("churned_at", kind="stable"),
        snapshots.sort_values("as_of", kind="stable"),
        left_on="churned_at",
        right_on="as_of",
        by="customer_id",
        allow_exact_matches=False,  # the snapshot of the churn day already knows the end
    ).dropna(subset=["as_of"])
    stayers = snapshots[~snapshots["customer_id"].isin(set(churns["customer_id"]))]
    names = [c for c in snapshots.columns if c not in ("customer_id", "as_of")]
    described = {f.name: f for f in describe(names, features_config)}
    numeric = [name for name, f in described.items() if f.unit is not Unit.CATEGORY]
    churner_values = last[numeric].apply(pd.to_numeric, errors="coerce")
    stayer_values = stayers[numeric].apply(pd.to_numeric, errors="coerce")
    spread = pd.concat([churner_values, stayer_values]).std()
    pushes = _champion_pushes(model, last)
    rows = []
    for reason, group in churner_values.groupby(last["reason"].to_numpy()):
        gap = ((group.mean() - stayer_values.mean()) / spread.where(spread > 0)).dropna()
        for feature in gap.abs().sort_values(ascending=False, kind="stable").index[:TOP_DRIVERS]:
            unit = described[feature].unit
            rows.append(
                {
                    "reason": reason,
                    "churners": len(group),
                    "feature": feature,
                    "description": described[feature].description,
                    "churners_value": _said(unit, group[feature].median()),
                    "stayers_value": _said(unit, stayer_values[feature].median()),
                    "difference": float(gap[feature]),
                    "champion_push": _push(pushes, reason, feature),
                }
            )
    return pd.DataFrame(rows, columns=columns)


def _champion_pushes(model: ChurnModel | None, last: pd.DataFrame) -> pd.DataFrame | None:
    """The champion's mean contribution per reason and feature, for the churners' last snapshots."""
    if model is None or last.empty:
        return None
    contributions = model.contributions(last).drop(columns="baseline")
    return contributions.groupby(last["reason"].to_numpy()).mean()


def _push(pushes: pd.DataFrame | None, reason: str, feature: str) -> float | None:
    if pushes is None or feature not in pushes.columns or reason not in pushes.index:
        return None
    return float(pushes.loc[reason, feature])


def _said(unit: Unit, value: float) -> str:
    if pd.isna(value):
        return "not known"
    # A change reads with its sign here: the table has no sentence to say "fell" or "rose".
    return f"{value:+.0%}" if unit is Unit.CHANGE else format_value(unit, value)


def render_reasons_report(
    churns: pd.DataFrame,
    drivers: pd.DataFrame,
    config: ProductConfig,
    *,
    champion: str | None,
    missing: list[str],
    pngs: dict[str, bytes] | None = None,
) -> str:
    """The whole reasons report as one HTML page with its charts embedded."""
    from training.report import _data_uri  # the training report's embedding, shared rather than copied

    labels = {code: reason.label for code, reason in config.reasons.taxonomy.items()}
    pngs = reason_pngs(churns, labels) if pngs is None else pngs
    title = "Why customers leave: cancellation reasons"
    sections = [
        f"<h1>{_e(title)}</h1>",
        _details(churns, champion),
        f'<p class="headline">{_e(headline(churns, labels))}</p>',
        *(f'<div class="warning"><strong>{_e(line)}</strong></div>' for line in missing),
    ]
    if not churns.empty:
        sections += [
            "<h2>The reason mix</h2>",
            _mix_table(churns, config),
            *(_figure(_data_uri(pngs[name]), caption) for name, caption in FIGURES[:3] if name in pngs),
            "<h2>What the classifier recovered</h2>",
            _recovered_table(churns, labels),
            *(_figure(_data_uri(pngs[name]), caption) for name, caption in FIGURES[3:] if name in pngs),
            "<h2>The drivers behind each reason</h2>",
            _drivers_table(drivers, labels, champion),
        ]
    return html_page(title, sections)


def headline(churns: pd.DataFrame, labels: dict[str, str]) -> str:
    """The report in one or two plain sentences."""
    if churns.empty:
        return "No customer has churned yet, so there is no reason mix to show."
    total = len(churns)
    given = churns[churns["reason"].ne(NO_REASON) & churns["reason"].ne("other")]
    first, last = churns["month"].min(), churns["month"].max()
    text = f"{total:,} customers churned from {first} to {last}."
    if len(given):
        top = given["reason"].value_counts()
        code, count = top.index[0], int(top.iloc[0])
        text += f" The most common reason was {_label(code, labels).lower()} ({count / total:.0%} of churns)."
    unplaced = total - len(given)
    if unplaced:
        text += f" {unplaced / total:.0%} have no reason anyone could place."
    words = _unplaced_with_words(churns)
    if len(words):
        recovered = int(words["source"].eq("classifier").sum())
        text += (
            f" The classifier read a reason in {recovered:,} of the {len(words):,} churns whose "
            "cancellation gave words but no code (or 'other')."
        )
    return text


def _unplaced_with_words(churns: pd.DataFrame) -> pd.DataFrame:
    """Churns whose cancellation said something but coded nothing useful: the classifier's work."""
    return churns[churns["stated"].isin(["other", NO_REASON]) & churns["has_text"]]


def write_reasons_report(
    settings: Settings, config: ProductConfig, *, out: Path | None = None
) -> ReasonsReport:
    """Read churns, fills, snapshots and the champion, and write the reasons report page."""
    from training.registry import champion_version, load_model

    missing: list[str] = []
    champion = champion_version(settings)
    model = load_model(settings, champion)[0] if champion else None
    engine = engine_for(settings)
    try:
        with engine.connect() as connection:
            churns = reason_churns(connection, config)
            drivers = reason_drivers(connection, churns, config.features, model)
            has_cancellations = connection.execute(select(cancellations.c.cancellation_id).limit(1)).first()
            has_snapshots = bool(built_days_in(connection))
    finally:
        engine.dispose()
    if not has_cancellations:
        missing.append(
            "No cancellations are stored: every churn shows as 'no reason given'. Import them with "
            "`churn ingest cancellations FILE` or POST /v1/cancellations."
        )
    if not has_snapshots:
        missing.append("No feature snapshots are built, so there are no drivers: run `churn features build`.")
    if champion is None:
        missing.append(
            "No champion model: the drivers compare snapshots only, without the model's view "
            "(train and promote one with `churn train --promote`)."
        )
    page = render_reasons_report(churns, drivers, config, champion=champion, missing=missing)
    path = write_report(out or settings.home / "reports" / "reasons.html", page)
    return ReasonsReport(path=path, churns=len(churns), missing=missing)


def _frame(connection: Connection, query: Select[Any]) -> pd.DataFrame:
    result = connection.execute(query)
    names = list(result.keys())
    rows = result.all()
    return pd.DataFrame(
        {name: pd.Series([row[i] for row in rows], dtype=object) for i, name in enumerate(names)}
    )


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _label(code: str, labels: dict[str, str]) -> str:
    if code == NO_REASON:
        return "No reason given"
    return labels.get(code, f"{code} (not in the taxonomy)")


def _figure(uri: str, caption: str) -> str:
    return f'<figure><img src="{uri}" alt="{_e(caption)}"><figcaption>{_e(caption)}</figcaption></figure>'


def _details(churns: pd.DataFrame, champion: str | None) -> str:
    rows = {
        "churns": f"{len(churns):,}",
        "champion model": f"version {champion}" if champion else "none",
        "written at": utc_now().strftime("%Y-%m-%d %H:%M UTC"),
    }
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows.items())
    return f'<table class="details">{cells}</table>'


def _mix_table(churns: pd.DataFrame, config: ProductConfig) -> str:
    taxonomy = config.reasons.taxonomy
    counts = churns["reason"].value_counts()
    rows = []
    for code, count in counts.items():
        reason = taxonomy.get(code)
        kind = "—" if reason is None else ("voluntary" if reason.voluntary else "involuntary")
        control = "—" if reason is None else ("yes" if reason.controllable else "no")
        labels = {c: r.label for c, r in taxonomy.items()}
        rows.append(
            f"<tr><td>{_e(_label(code, labels))}</td><td><code>{_e(code)}</code></td>"
            f'<td class="num">{count:,}</td><td class="num">{count / len(churns):.0%}</td>'
            f"<td>{_e(kind)}</td><td>{_e(control)}</td></tr>"
        )
    return (
        '<table><thead><tr><th>Reason</th><th>Code</th><th class="num">Churns</th>'
        '<th class="num">Share</th><th>Kind</th><th>Controllable</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _recovered_table(churns: pd.DataFrame, labels: dict[str, str]) -> str:
    words = _unplaced_with_words(churns)
    sources = churns["source"].value_counts()
    lines = [
        ("Churns whose cancellation carried a specific code", int(sources.get("customer", 0))),
        ("Coded 'other' by the customer", int(churns["stated"].eq("other").sum())),
        ("No code at all", int(churns["stated"].eq(NO_REASON).sum())),
        ("… of those 'other' or uncoded, with the customer's words", len(words)),
        ("Reason read from the words by the classifier", int(sources.get("classifier", 0))),
        ("Reason given by a rep (alert marked 'customer is leaving')", int(sources.get("rep", 0))),
        ("Still 'other' after classifying", int(churns["reason"].eq("other").sum())),
        ("Still no reason given", int(churns["reason"].eq(NO_REASON).sum())),
    ]
    rows = "".join(f'<tr><th>{_e(what)}</th><td class="num">{count:,}</td></tr>' for what, count in lines)
    recovered = churns[churns["source"].eq("classifier")]["reason"].value_counts()
    into = ", ".join(f"{_label(code, labels).lower()} {count}" for code, count in recovered.items())
    note = f'<p class="muted">The classifier placed them as: {_e(into)}.</p>' if into else ""
    return f'<table class="details">{rows}</table>{note}'


def _drivers_table(drivers: pd.DataFrame, labels: dict[str, str], champion: str | None) -> str:
    if drivers.empty:
        return '<p class="muted">No drivers: there are no feature snapshots before these churns.</p>'
    model_head = '<th class="num">Champion\'s push on risk</th>' if champion else ""
    rows = []
    for row in drivers.itertuples():
        push = ""
        if champion:
            push = (
                "—"
                if row.champion_push is None or pd.isna(row.champion_push)
                else f"{row.champion_push:+.2f}"
            )
            push = f'<td class="num">{_e(push)}</td>'
        rows.append(
            f"<tr><td>{_e(_label(row.reason, labels))} ({row.churners})</td><td>{_e(row.description)}</td>"
            f'<td class="num">{_e(row.churners_value)}</td><td class="num">{_e(row.stayers_value)}</td>'
            f'<td class="num">{row.difference:+.1f}</td>{push}</tr>'
        )
    return (
        '<table><thead><tr><th>Reason (churns)</th><th>Signal</th><th class="num">Churners (median)</th>'
        '<th class="num">Customers who stayed (median)</th><th class="num">Difference (std. dev.)</th>'
        f"{model_head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        '<p class="muted">Each reason\'s churners are read at their last snapshot before they left and '
        "compared with every snapshot of customers who never churned. A large difference says what these "
        "customers looked like beforehand, not that the signal caused them to leave; with few churns per "
        "reason, read it as a lead. The champion's push is the mean change the model made to their risk "
        "(log-odds) from that signal.</p>"
    )
