"""The likely reason: which cancellation reason an at-risk customer would give, learned from past churners.

Each voluntary churn with a reason (the cancellation's code, or the text classifier's when the code is
missing) is one example: the customer's features from the last snapshot before it left, and the reason
it gave. A regularised multinomial logistic regression fits the few hundred examples a company has
(trees need more), and a time-based holdout says how often it names the right reason beside always
guessing the most common one. A model that does not beat that guess is kept, but flagged low confidence.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sqlalchemy import Connection, Engine, select

from churn.config import ProductConfig
from churn.errors import UserFacingError
from churn.settings import Settings
from churn.tables import reason_predictions
from features.catalogue import Unit
from features.labels import churn_events
from features.scope import as_of_instant
from features.snapshot import built_days_in, describe, load_snapshots
from training.baselines import scaled_numbers
from training.dataset import as_numbers, category_text
from training.tracking import experiment_id, newest_version

MODEL_NAME = "churn-likely-reason"
EXPERIMENT = "churn-likely-reason"
META_FILE = "likely_reason.json"
# A reason needs this many past churners to be learnt; rarer ones are left out of the classes.
MIN_EXAMPLES_PER_REASON = 15
# The latest churns held out to test on (the model is then refitted on all of them).
HOLDOUT_SHARE = 0.25
# Strong shrinkage: a few hundred examples over dozens of features.
REGULARISATION_C = 0.1
# "other" is no answer a rep can act on: the model chooses among the named reasons.
_NOT_A_CLASS = {"other"}
_NOT_FEATURES = {"customer_id", "as_of"}


class LikelyReasonError(UserFacingError):
    """The likely-reason model cannot be trained or loaded as asked; the message says why."""


@dataclass(frozen=True)
class LikelyReasonModel:
    """The fitted classifier, the features it reads, its reasons, and how it did on the holdout."""

    pipeline: Pipeline
    numeric: list[str]
    categorical: list[str]
    evaluation: dict[str, Any]
    version: str | None = None

    @property
    def codes(self) -> list[str]:
        return [str(code) for code in self.pipeline.classes_]

    @property
    def low_confidence(self) -> bool:
        """True when the holdout did not show it naming the reason better than the most common guess."""
        return not self.evaluation.get("beats_majority", False)

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """Per customer (rows of a feature snapshot): the most likely reason code and its probability."""
        if features.empty:
            return pd.DataFrame({"customer_id": [], "code": [], "probability": []})
        probabilities = self.pipeline.predict_proba(_inputs(features, self.numeric, self.categorical))
        best = probabilities.argmax(axis=1)
        return pd.DataFrame(
            {
                "customer_id": features["customer_id"].astype(str).to_numpy(),
                "code": np.asarray(self.codes, dtype=object)[best],
                "probability": probabilities[np.arange(len(best)), best],
            }
        )


@dataclass(frozen=True)
class LikelyReasonTraining:
    """What ``train_likely_reason`` produced: the model, where it is stored, and its evaluation."""

    model: LikelyReasonModel
    version: str
    run_id: str

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "run_id": self.run_id, **self.model.evaluation}


def churner_examples(connection: Connection, config: ProductConfig) -> pd.DataFrame:
    """Past voluntary churners with a reason: each one's last snapshot before it left, and that reason.

    Columns: customer_id, as_of, churned_at, reason_code, then the snapshot's features. The code is the
    cancellation's own; when it has none, the classifier's reading of its text (reason_predictions).
    """
    churns = churn_events(connection, config.labels)
    churns = churns[churns["cancellation_id"].notna()].copy()
    classified = select(reason_predictions.c.cancellation_id, reason_predictions.c.reason_code)
    predicted = dict(connection.execute(classified).all())
    missing = churns["reason_code"].isna()
    churns.loc[missing, "reason_code"] = churns.loc[missing, "cancellation_id"].map(predicted)
    taxonomy = config.reasons.taxonomy
    voluntary_codes = {code for code, reason in taxonomy.items() if reason.voluntary} - _NOT_A_CLASS
    churns = churns[churns["reason_code"].isin(voluntary_codes) & churns["voluntary"].ne(False).fillna(True)]
    days = built_days_in(connection)
    if churns.empty or not days:
        return pd.DataFrame(columns=["customer_id", "as_of", "churned_at", "reason_code"])

    # The last snapshot strictly before the churn, and no older than the label horizon: the customer
    # as it looked while at risk, which is when the model is asked.
    starts = pd.to_datetime([as_of_instant(day) for day in days], utc=True)
    churned_at = pd.to_datetime(churns["churned_at"], utc=True)
    position = np.searchsorted(starts.to_numpy(), churned_at.to_numpy(), side="left") - 1
    horizon = pd.Timedelta(days=config.labels.horizon_days)
    usable = position >= 0
    usable[usable] = (churned_at[usable].to_numpy() - starts[position[usable]].to_numpy()) <= horizon
    churns = churns[usable].assign(as_of=[days[i] for i in position[usable]])
    frames = [
        load_snapshots(connection, [day], list(group["customer_id"].astype(str)))
        for day, group in churns.groupby("as_of", sort=True)
    ]
    snapshots = pd.concat([f for f in frames if not f.empty], ignore_index=True) if frames else pd.DataFrame()
    if snapshots.empty:
        return pd.DataFrame(columns=["customer_id", "as_of", "churned_at", "reason_code"])
    keys = churns[["customer_id", "as_of", "churned_at", "reason_code"]].astype({"customer_id": str})
    examples = keys.merge(snapshots, on=["customer_id", "as_of"], how="inner")
    return examples.sort_values(["churned_at", "customer_id"], kind="stable").reset_index(drop=True)


def fit_likely_reason(
    examples: pd.DataFrame, config: ProductConfig, *, min_examples: int = MIN_EXAMPLES_PER_REASON
) -> LikelyReasonModel:
    """Fit on the earlier churns, test on the later ones, then refit on all (pure: no database, no MLflow)."""
    counts = examples["reason_code"].value_counts()
    classes = sorted(str(code) for code, n in counts.items() if n >= min_examples)
    if len(classes) < 2:
        seen = ", ".join(f"{code} {n}" for code, n in counts.items()) or "none"
        raise LikelyReasonError(
            f"too few past churners with a reason to learn from (reasons seen: {seen}); the likely "
            f"reason needs at least two reasons with {min_examples} churners each"
        )
    examples = examples[examples["reason_code"].isin(classes)].reset_index(drop=True)
    names = [c for c in examples.columns if c not in {*_NOT_FEATURES, "churned_at", "reason_code"}]
    categorical = [f.name for f in describe(names, config.features) if f.unit is Unit.CATEGORY]
    numeric = [n for n in names if n not in categorical]
    label = examples["reason_code"].astype(str).to_numpy()
    frame = _inputs(examples, numeric, categorical)

    cut = int(np.floor(len(examples) * (1 - HOLDOUT_SHARE)))
    train, test = np.arange(cut), np.arange(cut, len(examples))
    if len(test) < len(classes) or len(set(label[train])) < 2:
        raise LikelyReasonError(
            f"{len(examples)} past churners are too few to hold the latest {HOLDOUT_SHARE:.0%} out and "
            "still learn every reason from the earlier ones"
        )
    held = _pipeline(numeric, categorical, config.training.seed).fit(frame.iloc[train], label[train])
    guess = held.predict(frame.iloc[test])
    majority = pd.Series(label[train]).value_counts().index[0]
    always = np.full(len(test), majority, dtype=object)
    truth = label[test]
    accuracy, baseline = accuracy_score(truth, guess), accuracy_score(truth, always)
    macro_f1 = f1_score(truth, guess, average="macro", labels=classes, zero_division=0)
    baseline_f1 = f1_score(truth, always, average="macro", labels=classes, zero_division=0)
    evaluation = {
        "examples": len(examples),
        "train_examples": len(train),
        "test_examples": len(test),
        "train_until": str(examples["churned_at"].iloc[cut - 1].date()),
        "test_from": str(examples["churned_at"].iloc[cut].date()),
        "classes": {code: int(counts[code]) for code in classes},
        "left_out": {str(c): int(n) for c, n in counts.items() if str(c) not in classes},
        "accuracy": float(accuracy),
        "macro_f1": float(macro_f1),
        "majority_reason": str(majority),
        "majority_accuracy": float(baseline),
        "majority_macro_f1": float(baseline_f1),
        "beats_majority": bool(accuracy > baseline),
    }
    final = _pipeline(numeric, categorical, config.training.seed).fit(frame, label)
    return LikelyReasonModel(final, numeric, categorical, evaluation)


def train_likely_reason(
    settings: Settings,
    config: ProductConfig,
    engine: Engine,
    *,
    min_examples: int = MIN_EXAMPLES_PER_REASON,
) -> LikelyReasonTraining:
    """Learn the likely reason from the stored churns and register it as a new version of its model."""
    with engine.connect() as connection:
        examples = churner_examples(connection, config)
    model = fit_likely_reason(examples, config, min_examples=min_examples)
    experiment = experiment_id(settings, EXPERIMENT)
    evaluation = model.evaluation
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_params(
            {
                "examples": evaluation["examples"],
                "classes": ",".join(evaluation["classes"]),
                "holdout_share": HOLDOUT_SHARE,
                "C": REGULARISATION_C,
            }
        )
        mlflow.log_metrics(
            {k: evaluation[k] for k in ("accuracy", "macro_f1", "majority_accuracy", "majority_macro_f1")}
        )
        mlflow.set_tag("beats_majority", str(evaluation["beats_majority"]).lower())
        mlflow.log_dict(
            {"numeric": model.numeric, "categorical": model.categorical, "evaluation": evaluation}, META_FILE
        )
        example = _inputs(examples.head(5), model.numeric, model.categorical)
        # The pickle caution is about loading strangers' files; this store only holds our own.
        logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)
        info = mlflow.sklearn.log_model(
            model.pipeline,
            name="model",
            registered_model_name=MODEL_NAME,
            input_example=example,
            serialization_format="cloudpickle",
        )
    version = str(info.registered_model_version)
    return LikelyReasonTraining(
        LikelyReasonModel(model.pipeline, model.numeric, model.categorical, evaluation, version),
        version,
        run.info.run_id,
    )


def load_likely_reason(settings: Settings) -> LikelyReasonModel | None:
    """The newest likely-reason model, or None when none has been trained."""
    newest = newest_version(settings, MODEL_NAME)
    if newest is None:
        return None
    pipeline = mlflow.sklearn.load_model(f"models:/{MODEL_NAME}/{newest.version}")
    with tempfile.TemporaryDirectory() as scratch:
        path = mlflow.artifacts.download_artifacts(
            run_id=newest.run_id,
            artifact_path=META_FILE,
            dst_path=scratch,
            tracking_uri=settings.resolved_mlflow_tracking_uri,
        )
        meta = json.loads(Path(path).read_text(encoding="utf-8"))
    return LikelyReasonModel(
        pipeline, meta["numeric"], meta["categorical"], meta["evaluation"], str(newest.version)
    )


def describe_reason(code: str, probability: float, model: LikelyReasonModel, config: ProductConfig) -> dict:
    """A likely reason as alerts and the API show it: code, label, probability, and its play."""
    reason = config.reasons.taxonomy.get(code)
    return {
        "code": code,
        "label": reason.label if reason else code,
        "probability": round(float(probability), 4),
        "play": reason.play if reason else None,
        "low_confidence": model.low_confidence,
    }


def _pipeline(numeric: list[str], categorical: list[str], seed: int) -> Pipeline:
    prepare = ColumnTransformer(
        [
            ("numbers", scaled_numbers(), numeric),
            (
                "categories",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="(unknown)"),
                    OneHotEncoder(
                        handle_unknown="infrequent_if_exist", min_frequency=10, sparse_output=False
                    ),
                ),
                categorical,
            ),
        ]
    )
    return make_pipeline(prepare, LogisticRegression(C=REGULARISATION_C, max_iter=2_000, random_state=seed))


def _inputs(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """The model's columns in its order: numbers as float64, categories as text (NaN where unknown)."""
    columns: dict[str, Any] = {}
    for name in numeric:
        columns[name] = as_numbers(frame[name]) if name in frame.columns else np.full(len(frame), np.nan)
    for name in categorical:
        text = category_text(frame[name]) if name in frame.columns else pd.Series([None] * len(frame))
        columns[name] = text.to_numpy(dtype=object)
    out = pd.DataFrame(columns, index=range(len(frame)))
    for name in categorical:
        out[name] = out[name].where(out[name].notna(), np.nan)
    return out
