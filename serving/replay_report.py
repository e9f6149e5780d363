"""The alert-policy replay as a section of the evaluation report: a chart and the tables behind it."""

from __future__ import annotations

import base64
import html

from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from serving.replay import Replay, percent
from training.plots import figure_png, new_figure


def replay_section(replay: Replay) -> str:
    """An HTML fragment: the policy's weekly alerts and precision, and the per-owner load."""
    o = replay.overall
    chart = base64.b64encode(figure_png(_weekly_chart(replay))).decode("ascii")
    plural = "" if o["alerts"] == 1 else "s"
    lead = "—" if o["median_lead_days"] is None else f"{o['median_lead_days']:.0f} days"
    summary = " ".join(
        [
            f"At threshold {o['threshold']:.0%}, from {o['from']} to {o['to']}, the alert policy would",
            f"have sent <b>{o['alerts']:,} alert{plural}</b> ({o['alerts_per_week']:.1f} a week,",
            f"{o['in_digests']:,} in daily digests). <b>{percent(o['precision'])}</b> of alerted customers",
            f"churned within {o['horizon_days']} days, against {percent(o['base_rate'])} of all customers;",
            f"<b>{percent(o['recall'])}</b> of churners ({o['churners_alerted']:,} of {o['churners']:,})",
            f"were alerted first, a median {lead} ahead.",
        ]
    )
    weeks = "".join(
        f"<tr><td>{w['week']}</td><td>{w['alerts']:,}</td><td>{w['churned']:,}</td>"
        f"<td>{percent(w['precision'])}</td></tr>"
        for w in replay.by_week
    )
    owners = "".join(
        f"<tr><td>{html.escape(r['owner'])}</td><td>{r['alerts']:,}</td><td>{r['alerts_per_week']:.1f}</td>"
        f"<td>{r['churned']:,}</td><td>{percent(r['precision'])}</td></tr>"
        for r in replay.by_owner
    )
    return "\n".join(
        [
            "<h2>What the alert policy would have sent</h2>",
            f'<p class="headline">{summary}</p>',
            '<figure><img alt="alerts per week and their precision" '
            f'src="data:image/png;base64,{chart}"><figcaption>Alerts per week (bars) and the share of '
            "alerted customers who churned (line), replayed over the backtest's out-of-time scores."
            "</figcaption></figure>",
            "<table><tr><th>week of</th><th>alerts</th><th>churned</th><th>precision</th></tr>"
            f"{weeks}</table>",
            "<h3>Per owner</h3>",
            "<table><tr><th>owner</th><th>alerts</th><th>a week</th><th>churned</th><th>precision</th></tr>"
            f"{owners}</table>",
            '<p class="muted">Replayed with <code>churn alerts replay</code> under the current alert '
            "settings (threshold, re-arming, cooldown, jumps, daily cap); change them and replay to fit the "
            "team's capacity.</p>",
        ]
    )


def _weekly_chart(replay: Replay) -> Figure:
    figure = new_figure(width=8, height=3.2)
    ax = figure.add_subplot()
    weeks = [w["week"] for w in replay.by_week]
    ax.bar(weeks, [w["alerts"] for w in replay.by_week], color="#9fb3c8", label="alerts")
    ax.set_ylabel("alerts")
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    share = ax.twinx()
    precision = [w["precision"] if w["precision"] is not None else float("nan") for w in replay.by_week]
    share.plot(weeks, precision, color="#2f80ed", marker="o", label="precision")
    base = replay.overall["base_rate"] or 0.0
    share.axhline(base, color="#e67700", linestyle="--", linewidth=1, label="churn rate of all customers")
    share.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    known = [p for p in precision if p == p]  # NaN (a week without alerts) is not a precision
    share.set_ylim(0, max([base, *known, 0.05]) * 1.2)
    share.legend(loc="upper left", fontsize=8)
    return figure
