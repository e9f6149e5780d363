"""Why a customer's risk is what it is, in the sentences of the feature catalogue.

A driver is one feature's contribution to the model's log-odds for one customer (LightGBM
``pred_contrib``): positive pushes risk up, negative pulls it down. Features that only describe the
account (segment, plan) are drivers too, but the sentence says what they are, not what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from training.model import ChurnModel

# Contributions smaller than this (in log-odds) are noise, not a reason worth a rep's time.
MIN_EFFECT = 0.01


@dataclass(frozen=True)
class Driver:
    """One reason: the feature, its value, its sentence, and how hard it pushes (log-odds)."""

    feature: str
    value: object
    sentence: str
    effect: float

    @property
    def raises_risk(self) -> bool:
        return self.effect > 0

    def as_dict(self) -> dict[str, object]:
        return {
            "feature": self.feature,
            "value": self.value,
            "sentence": self.sentence,
            "effect": round(self.effect, 4),
            "direction": "raises risk" if self.raises_risk else "lowers risk",
        }


@dataclass(frozen=True)
class Explanation:
    """A customer's top drivers raising and lowering risk."""

    raising: list[Driver]
    lowering: list[Driver]

    def as_dict(self) -> dict[str, object]:
        return {
            "raising": [d.as_dict() for d in self.raising],
            "lowering": [d.as_dict() for d in self.lowering],
        }


def explain(model: ChurnModel, frame: pd.DataFrame, top: int = 3) -> list[Explanation]:
    """The ``top`` drivers each way for every row of ``frame`` (compute only for rows that need it)."""
    if frame.empty:
        return []
    contributions = model.contributions(frame).drop(columns="baseline")
    by_name = {f.name: f for f in model.features}
    names = np.asarray(contributions.columns)
    effects = contributions.to_numpy()
    # Stable sort on the negated effect keeps ties in feature order, largest first.
    order = np.argsort(-effects, axis=1, kind="stable")
    explanations = []
    for position in range(len(frame)):
        row, ranked = effects[position], order[position]
        values = frame.iloc[position]
        raising = [i for i in ranked if row[i] > MIN_EFFECT][:top]
        lowering = [i for i in ranked[::-1] if row[i] < -MIN_EFFECT][:top]
        explanations.append(
            Explanation(
                [_driver(names[i], values.get(names[i]), row[i], by_name) for i in raising],
                [_driver(names[i], values.get(names[i]), row[i], by_name) for i in lowering],
            )
        )
    return explanations


def driver_strength(model: ChurnModel, frame: pd.DataFrame) -> pd.DataFrame:
    """How hard each feature pushes risk over ``frame``'s rows, strongest first.

    ``mean_abs_effect`` is the mean |contribution| in log-odds; ``raises_share`` and ``lowers_share``
    are the shares of rows it pushes up or down by more than ``MIN_EFFECT``. Unlike gain importance,
    this is measured on the customers given, so it can be read for today's book of business.
    """
    if frame.empty:  # no rows, no pushes: every strength is unknown (NaN)
        effects = pd.DataFrame(columns=model.feature_names, dtype="float64")
    else:
        effects = model.contributions(frame).drop(columns="baseline")
    by_name = {f.name: f for f in model.features}
    table = pd.DataFrame(
        {
            "feature": effects.columns,
            "description": [by_name[name].description for name in effects.columns],
            "mean_abs_effect": effects.abs().mean().to_numpy(),
            "raises_share": (effects > MIN_EFFECT).mean().to_numpy(),
            "lowers_share": (effects < -MIN_EFFECT).mean().to_numpy(),
        }
    )
    return table.sort_values(
        ["mean_abs_effect", "feature"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)


def _driver(name: str, value: object, effect: float, by_name: dict) -> Driver:
    plain = None if value is None or pd.isna(value) else _plain(value)
    return Driver(feature=name, value=plain, sentence=by_name[name].say(plain), effect=float(effect))


def _plain(value: object) -> object:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass(frozen=True)
class ChangeDriver:
    """One feature's share of a change in risk between two scorings, in log-odds, with both values."""

    feature: str
    value: object
    previous_value: object
    sentence: str
    previous_sentence: str
    effect: float

    def as_dict(self) -> dict[str, object]:
        return {
            "feature": self.feature,
            "value": self.value,
            "previous_value": self.previous_value,
            "sentence": self.sentence,
            "previous_sentence": self.previous_sentence,
            "effect": round(self.effect, 4),
            "direction": "raised risk" if self.effect > 0 else "lowered risk",
        }


def explain_change(
    model: ChurnModel, current: pd.DataFrame, previous: pd.DataFrame, top: int = 3
) -> list[list[ChangeDriver]]:
    """What moved each row's risk from ``previous`` to ``current`` (rows aligned by position).

    The difference of the two rows' contributions under the same model: the features whose change
    pushed risk up the most come first. The model is the same for both, so the change is the
    customer's, not a retrained model's.
    """
    if current.empty:
        return []
    now = model.contributions(current).drop(columns="baseline").to_numpy()
    before = model.contributions(previous).drop(columns="baseline").to_numpy()
    by_name = {f.name: f for f in model.features}
    names = model.feature_names
    drivers = []
    for position in range(len(current)):
        delta = pd.Series(now[position] - before[position], index=names).sort_values(
            ascending=False, kind="stable"
        )
        row, was = current.iloc[position], previous.iloc[position]
        drivers.append(
            [
                _change_driver(name, row.get(name), was.get(name), float(delta[name]), by_name)
                for name in delta.index[:top]
                if delta[name] > MIN_EFFECT
            ]
        )
    return drivers


def _change_driver(name: str, value: object, previous: object, effect: float, by_name: dict) -> ChangeDriver:
    now = None if value is None or pd.isna(value) else _plain(value)
    was = None if previous is None or pd.isna(previous) else _plain(previous)
    feature = by_name[name]
    return ChangeDriver(name, now, was, feature.say(now), feature.say(was), effect)
