"""The label policy's effect: voluntary-churn backtest AUC of a model trained with it beside one without.

    OMP_NUM_THREADS=1 python -m benchmarks.label_policy [--home DIR] [--bootstrap 1000] [--json]

Without ``--home`` it runs ``churn demo`` (2,000 customers, its snapshot history) in a temporary
``CHURN_HOME`` first; with it, it reads the demo company already there. Two models are backtested by
``training.backtest.train`` on the same snapshot rows, folds and parameters; only their training labels
differ:

- **policy on** (the default config): churn the label policy leaves out (involuntary, uncontrollable,
  ``labels.exclude_reason_codes``) is not trained on;
- **policy off** (``exclude_involuntary`` and ``exclude_uncontrollable`` false, no excluded codes): every
  churn is a 1.

Both are scored against one target on the same out-of-time test rows: **voluntary, controllable churn**
(the policy-on label, a left-out churn counted as "did not churn", as production scores those customers
too). LightGBM, the logistic baseline and the rule baseline of each run are reported, with a paired
bootstrap over customers of LightGBM's on - off difference. Two secondary views: the same target with the
left-out churners dropped from the test rows, and every churn as the target (what "off" is trained for).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from benchmarks.provenance import code_version

SEED = 1
POLICY_OFF = {"exclude_involuntary": False, "exclude_uncontrollable": False, "exclude_reason_codes": []}


def build_demo(home: Path) -> None:
    """The demo company, its snapshot history and first model, in ``home``."""
    env = {**os.environ, "CHURN_HOME": str(home), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    env.pop("CHURN_DATABASE_URL", None)
    subprocess.run([sys.executable, "-m", "churn", "demo"], env=env, check=True, stdout=subprocess.DEVNULL)


def measure(home: Path, bootstrap: int) -> dict[str, Any]:
    """Backtest with and without the label policy; every figure against the same target and rows."""
    os.environ["CHURN_HOME"] = str(home)
    from churn.config import LabelsConfig, load_config
    from churn.db import engine_for
    from churn.settings import Settings
    from features.labels import label_snapshots, label_summary
    from features.snapshot import built_days_in, load_snapshots
    from training.backtest import train
    from training.dataset import snapshot_dataset

    settings = Settings()
    config = load_config(settings.config_path)
    off = LabelsConfig(**{**config.labels.model_dump(), **POLICY_OFF})
    engine = engine_for(settings)
    with engine.connect() as connection:
        on_data = snapshot_dataset(connection, config.features, config.labels, reasons=config.reasons)
        off_data = snapshot_dataset(connection, config.features, off, reasons=config.reasons)
        snapshots = load_snapshots(connection, built_days_in(connection))[["customer_id", "as_of"]]
        labels = label_snapshots(connection, snapshots, config.labels, reasons=config.reasons)
    engine.dispose()
    keys = ["customer_id", "as_of"]
    if not on_data.keys[keys].equals(off_data.keys[keys]):
        raise SystemExit("the two datasets hold different rows: the comparison would not be paired")

    target = on_data.keys[keys].assign(
        voluntary=on_data.label.to_numpy(),
        any_churn=off_data.label.to_numpy(),
        left_out=~on_data.trainable,
    )
    runs = {"policy on": train(on_data, config), "policy off": train(off_data, config)}
    scored = {name: run.predictions.merge(target, on=keys, validate="1:1") for name, run in runs.items()}
    first = next(iter(scored.values()))
    if not all(frame[keys].equals(first[keys]) for frame in scored.values()):
        raise SystemExit("the two backtests tested different rows")
    models = runs["policy on"].evaluation.models
    views = {
        "voluntary, controllable churn (left-out churners count as 0)": ("voluntary", None),
        "voluntary, controllable churn, left-out churners not tested": ("voluntary", "left_out"),
        "any churn (what policy off is trained for)": ("any_churn", None),
    }
    figures: dict[str, Any] = {}
    for view, (column, drop) in views.items():
        figures[view] = {}
        for name, frame in scored.items():
            kept = frame if drop is None else frame[~frame[drop]]
            figures[view][name] = {
                model: _aucs(kept[column].to_numpy(), kept[model].to_numpy()) for model in models
            }
            figures[view][name]["test_rows"] = len(kept)
            figures[view][name]["positives"] = int(kept[column].sum())
    main = scored["policy on"]
    difference = _paired_bootstrap(
        main["customer_id"].to_numpy(),
        main["voluntary"].to_numpy(),
        main["lightgbm"].to_numpy(),
        scored["policy off"]["lightgbm"].to_numpy(),
        bootstrap,
    )
    summary = label_summary(labels, config.reasons)
    return {
        "code": code_version(("features", "training", "benchmarks")),
        "home": str(home),
        "labels": {k: v for k, v in summary.items() if k != "churn_rate"},
        "dataset_rows": len(on_data.label),
        "left_out_of_training": int((~on_data.trainable).sum()),
        "folds": len(runs["policy on"].evaluation.folds),
        "figures": figures,
        "lightgbm_on_minus_off": difference,
    }


def _aucs(label: np.ndarray, risk: np.ndarray) -> dict[str, float]:
    return {
        "roc_auc": float(roc_auc_score(label, risk)),
        "pr_auc": float(average_precision_score(label, risk)),
    }


def _paired_bootstrap(
    customers: np.ndarray, label: np.ndarray, on: np.ndarray, off: np.ndarray, repeats: int
) -> dict[str, Any]:
    """On - off AUC differences and their 95% interval, resampling whole customers (rows of one are alike)."""
    codes, index = np.unique(customers, return_inverse=True)
    rows_of = pd.Series(np.arange(len(customers))).groupby(index).apply(np.asarray).to_list()
    rng = np.random.default_rng(SEED)
    deltas: dict[str, list[float]] = {"roc_auc": [], "pr_auc": []}
    for _ in range(repeats):
        picked = np.concatenate([rows_of[i] for i in rng.integers(0, len(codes), len(codes))])
        y = label[picked]
        if not 0 < y.sum() < len(y):
            continue
        a, b = _aucs(y, on[picked]), _aucs(y, off[picked])
        for metric in deltas:
            deltas[metric].append(a[metric] - b[metric])
    point_on, point_off = _aucs(label, on), _aucs(label, off)
    return {
        metric: {
            "difference": point_on[metric] - point_off[metric],
            "ci95": [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))],
            "share_on_better": float(np.mean(np.asarray(values) > 0)),
        }
        for metric, values in deltas.items()
    } | {"repeats": repeats, "customers": len(codes)}


def print_report(result: dict[str, Any]) -> None:
    labels = result["labels"]
    print(
        f"code {result['code']}; {result['dataset_rows']:,} snapshot rows, {result['folds']} backtest folds"
    )
    print(
        f"left out of training by the policy: {result['left_out_of_training']:,} rows "
        f"({labels['excluded_because']}); churns by reason: {labels['churns_by_reason']}"
    )
    for view, runs in result["figures"].items():
        print(f"\ntarget: {view}")
        print(f"  {'trained':<11} {'model':<20} {'ROC AUC':>8} {'PR AUC':>8}   test rows (positives)")
        for name, models in runs.items():
            for model, value in models.items():
                if isinstance(value, dict):
                    print(
                        f"  {name:<11} {model:<20} {value['roc_auc']:8.4f} {value['pr_auc']:8.4f}   "
                        f"{models['test_rows']:,} ({models['positives']:,})"
                    )
    d = result["lightgbm_on_minus_off"]
    print(
        f"\nLightGBM on - off, paired bootstrap over {d['customers']:,} customers ({d['repeats']} resamples):"
    )
    for metric in ("roc_auc", "pr_auc"):
        low, high = d[metric]["ci95"]
        print(
            f"  {metric}: {d[metric]['difference']:+.4f}  (95% {low:+.4f} to {high:+.4f}; "
            f"on better in {d[metric]['share_on_better']:.0%})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="a CHURN_HOME where `churn demo` has already run")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="label-policy-") as temp:
        home = args.home
        if home is None:
            home = Path(temp)
            build_demo(home)
        result = measure(home, args.bootstrap)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)


if __name__ == "__main__":
    main()
