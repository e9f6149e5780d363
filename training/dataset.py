"""Training data: labelled feature snapshots from the database, or a feature table a data scientist has.

Either way the result is a ``Dataset``: one row per observation (customer × as_of), the feature
columns the model may use, the 0/1 label, and the keys that say whose row it is and when. Censored
and excluded snapshots never get here: a snapshot whose horizon has not passed yet has no label.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Connection

from churn.config import FeaturesConfig, LabelsConfig, ReasonsConfig
from churn.errors import UserFacingError
from features.catalogue import Feature, Unit
from features.labels import EXCLUDED, LABELLED, label_snapshots
from features.snapshot import built_days_in, describe, load_snapshots

# Columns of a snapshot frame that describe the row or its future, never model inputs.
_NOT_FEATURES = {"customer_id", "as_of", "churned", "label_status", "churned_at", "reason_code", "voluntary"}


class DatasetError(UserFacingError):
    """The data cannot be trained on as it is; the message says what is missing."""


@dataclass(frozen=True)
class Dataset:
    """Observations to train and evaluate on.

    ``keys`` has ``customer_id``, ``trainable`` (false for rows the label policy leaves out of
    training: they are still scored in the backtest, as customers who did not churn, because
    production scores them too) and, when the data has a time, ``as_of`` (a date) and
    ``churned_at`` (when a churned row's customer left; NaT otherwise or unknown). ``frame`` holds
    only model inputs: numbers as float64 and text as ``category``.
    """

    frame: pd.DataFrame
    label: pd.Series
    keys: pd.DataFrame
    features: list[Feature]
    source: str
    horizon_days: int
    time_column: str | None = "as_of"
    id_column: str = "customer_id"
    grace_days: int = 0

    @property
    def label_reach(self) -> timedelta:
        """How far past its as_of a row's label looks: the horizon, plus the grace that proves an end."""
        return timedelta(days=self.horizon_days + self.grace_days)

    @property
    def trainable(self) -> np.ndarray:
        return self.keys["trainable"].to_numpy(dtype=bool)

    @property
    def has_time(self) -> bool:
        return "as_of" in self.keys.columns

    @property
    def days(self) -> list[date]:
        """The distinct as_of days, oldest first (empty without a time column)."""
        return sorted(self.keys["as_of"].unique()) if self.has_time else []

    @property
    def window(self) -> tuple[date, date] | None:
        days = self.days
        return (days[0], days[-1]) if days else None

    def fingerprint(self) -> str:
        """A digest of every value trained on: the same data gives the same fingerprint."""
        whole = pd.concat([self.keys.astype(str), self.frame, self.label.rename("__label__")], axis=1)
        hashed = pd.util.hash_pandas_object(whole, index=False).to_numpy()
        columns = "\x1f".join(map(str, whole.columns)).encode()
        return hashlib.sha256(columns + hashed.tobytes()).hexdigest()

    def summary(self) -> dict[str, object]:
        window = self.window
        return {
            "source": self.source,
            "rows": len(self.frame),
            "customers": int(self.keys["customer_id"].nunique()),
            "churned": int(self.label.sum()),
            "left_out_of_training": int((~self.trainable).sum()),
            "churn_rate": float(self.label.mean()) if len(self.label) else None,
            "features": len(self.frame.columns),
            "days": len(self.days),
            "from": window[0].isoformat() if window else None,
            "to": window[1].isoformat() if window else None,
            "horizon_days": self.horizon_days,
        }


def snapshot_dataset(
    connection: Connection,
    features_config: FeaturesConfig,
    labels_config: LabelsConfig,
    *,
    horizon_days: int | None = None,
    reasons: ReasonsConfig | None = None,
) -> Dataset:
    """Every built snapshot whose label is known, labelled with churn within the horizon."""
    horizon = labels_config.horizon_days if horizon_days is None else horizon_days
    days = built_days_in(connection)
    if not days:
        raise DatasetError(
            "no feature snapshots yet: build a history first "
            "(churn features build --from DAY --to DAY --step 7)"
        )
    snapshots = load_snapshots(connection, days)
    labels = label_snapshots(
        connection, snapshots[["customer_id", "as_of"]], labels_config, horizon_days=horizon, reasons=reasons
    )
    status = labels["label_status"].to_numpy()
    labelled = status == LABELLED
    if not labelled.any():
        raise DatasetError(
            f"none of the {len(days)} snapshots ({days[0]} to {days[-1]}) has a label yet: a snapshot is "
            f"labelled once its {horizon}-day horizon has passed; build snapshots from further back"
        )
    known = labelled | (status == EXCLUDED)
    snapshots, labels = snapshots[known].reset_index(drop=True), labels[known].reset_index(drop=True)
    names = [c for c in snapshots.columns if c not in _NOT_FEATURES]
    described = describe(names, features_config)
    frame = _model_inputs(snapshots[names], {f.name for f in described if f.unit is Unit.CATEGORY})
    keys = pd.DataFrame(
        {
            "customer_id": snapshots["customer_id"].astype(str),
            "as_of": snapshots["as_of"],
            "churned_at": pd.to_datetime(labels["churned_at"], utc=True),
            "trainable": (labels["label_status"] == LABELLED).to_numpy(),
        }
    )
    # A churn the policy leaves out (a failed payment) is not the churn this model predicts: for
    # evaluation such a customer did not churn.
    churned = labels["churned"].fillna(0).astype("int64")
    keys.loc[~keys["trainable"], "churned_at"] = pd.NaT
    dataset = Dataset(
        frame=frame,
        label=churned,
        keys=keys,
        features=described,
        source="snapshots",
        horizon_days=horizon,
        grace_days=labels_config.grace_days,
    )
    check_trainable(dataset)
    return dataset


def table_dataset(
    path: Path,
    *,
    label: str,
    id_column: str | None = None,
    time_column: str | None = None,
    horizon_days: int,
) -> Dataset:
    """A feature table from a CSV or Parquet file: one row per observation, a 0/1 label column."""
    table = _read_table(path)
    for option, column in (("--label", label), ("--id", id_column), ("--time", time_column)):
        if column is not None and column not in table.columns:
            raise DatasetError(
                f"{path}: {option} {column!r}: no such column (columns: {_some(table.columns)})"
            )
    y = _binary_label(path, table[label], label)
    ids = table[id_column].astype(str) if id_column else pd.Series(np.arange(len(table)).astype(str))
    keys = pd.DataFrame({"customer_id": ids.to_numpy(), "trainable": True})
    if time_column:
        if pd.api.types.is_numeric_dtype(table[time_column]):
            raise DatasetError(
                f"{path}: --time {time_column!r}: holds numbers ({table[time_column].tolist()[0]!r}, ...); "
                "write the dates as YYYY-MM-DD"
            )
        when = pd.to_datetime(table[time_column], utc=True, errors="coerce", format="mixed")
        bad = when.isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DatasetError(
                f"{path}:{row + 2}: column {time_column!r}: "
                f"{table[time_column].tolist()[row]!r} is not a date"
            )
        keys["as_of"] = when.dt.date.to_numpy()
    key_columns = ["customer_id", "as_of"] if time_column else ["customer_id"]
    duplicated = keys.duplicated(key_columns, keep=False)
    if id_column and duplicated.any():
        first = keys[duplicated].iloc[0]
        same = (keys[key_columns] == first[key_columns]).all(axis=1)
        what = f"{id_column!r} {first['customer_id']!r}" + (f" at {first['as_of']}" if time_column else "")
        raise DatasetError(
            f"{path}: {what} appears {int(same.sum())} times; each "
            f"{'id and time' if time_column else 'id'} must be one row"
            + ("" if time_column else " (give --time if the table holds several dates per id)")
        )
    inputs = table.drop(columns=[c for c in (label, id_column, time_column) if c])
    if inputs.empty or not len(inputs.columns):
        raise DatasetError(f"{path}: no feature columns besides the label, id and time")
    _check_inputs(path, inputs)
    text_columns = {c for c in inputs.columns if not pd.api.types.is_numeric_dtype(inputs[c])}
    frame = _model_inputs(inputs, text_columns)
    dataset = Dataset(
        frame=frame,
        label=y,
        keys=keys,
        features=[
            Feature(c, "table", c.replace("_", " "), Unit.SCORE, f"{c}: {{value}}") for c in frame.columns
        ],
        source=str(path),
        horizon_days=horizon_days,
        time_column=time_column,
        id_column=id_column or "row",
    )
    check_trainable(dataset)
    return dataset


# Columns that record the outcome rather than anything known before it: a model given them would
# score perfectly in the backtest and uselessly in production.
OUTCOME_COLUMNS = {
    "churned_at",
    "churn_date",
    "label_status",
    "reason_code",
    "reason_text",
    "cancellation_id",
}
# Characters LightGBM refuses in a feature name (it stores the names in JSON).
_NAME_CHARACTERS = set('[]{}",:')


def _check_inputs(path: Path, inputs: pd.DataFrame) -> None:
    """Refuse columns that would leak the outcome, identify rows, or that LightGBM cannot name."""
    for name in inputs.columns:
        text = str(name)
        if text.lower() in OUTCOME_COLUMNS:
            raise DatasetError(
                f"{path}: column {text!r} records the outcome, not something known before it: drop it"
            )
        if _NAME_CHARACTERS & set(text):
            raise DatasetError(f'{path}: column {text!r}: names may not contain any of [ ] {{ }} " , :')
        values = inputs[name]
        if not pd.api.types.is_numeric_dtype(values) and len(values) >= 20:
            distinct = values.nunique()
            if distinct > 0.5 * len(values):
                raise DatasetError(
                    f"{path}: column {text!r} has {distinct:,} different values in {len(values):,} rows, "
                    "like an identifier: give it as --id, or drop it"
                )


def check_trainable(dataset: Dataset) -> None:
    """Refuse data a model cannot learn from, saying why."""
    positives = int(dataset.label.sum())
    if positives == 0 or positives == len(dataset.label):
        only = "churned" if positives else "stayed"
        raise DatasetError(
            f"{dataset.source}: every one of the {len(dataset.label):,} labelled rows {only}: a model needs "
            "customers who churned and customers who stayed"
        )


def _read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DatasetError(f"{path}: no such file")
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            return pd.read_parquet(path)
        if name.endswith((".csv", ".csv.gz")):
            return pd.read_csv(path)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the table: {str(exc).splitlines()[0]}") from None
    raise DatasetError(f"{path}: expected a .csv, .csv.gz or .parquet file")


def _binary_label(path: Path, values: pd.Series, column: str) -> pd.Series:
    """The label as 0/1; true/false, yes/no and 1/0 are accepted, anything else is named."""
    words = {"1": 1, "0": 0, "1.0": 1, "0.0": 0, "true": 1, "false": 0, "yes": 1, "no": 0}
    text = values.astype(str).str.strip().str.lower()
    mapped = text.map(words)
    bad = mapped.isna() | values.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DatasetError(
            f"{path}:{row + 2}: column {column!r}: {values.tolist()[row]!r} is not a binary label "
            "(expected 0/1, true/false or yes/no)"
        )
    return mapped.astype("int64").reset_index(drop=True)


def _model_inputs(raw: pd.DataFrame, categorical: set[str]) -> pd.DataFrame:
    """Numbers as float64 (infinities unknown), categories as ``category`` with sorted levels."""
    columns = {}
    for name in raw.columns:
        if name in categorical:
            text = category_text(raw[name])
            columns[name] = pd.Categorical(text, categories=sorted(text.dropna().unique()))
        else:
            columns[name] = as_numbers(raw[name])
    return pd.DataFrame(columns)


def category_text(values: pd.Series) -> pd.Series:
    """A categorical input's values as text (None where unknown), the form its levels are kept in."""
    return values.astype(object).where(values.notna(), None).map(lambda v: None if v is None else str(v))


def as_numbers(values: pd.Series) -> np.ndarray:
    """A numeric input as float64; text that is not a number and infinities are unknown (NaN)."""
    number = pd.to_numeric(values, errors="coerce").astype("float64")
    return number.replace([np.inf, -np.inf], np.nan).to_numpy()


def _some(columns: pd.Index) -> str:
    shown = ", ".join(map(str, columns[:8]))
    return shown + (f", ... ({len(columns)} in all)" if len(columns) > 8 else "")
