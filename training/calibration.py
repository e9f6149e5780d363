"""From model scores to the probability a rep reads: "61% chance of churning within 90 days".

Fitted on a slice later than the one the model learned from, so it also corrects for the churn rate
drifting over time. Both maps only ever rise with the score: a calibrated risk never reorders two
customers the model ranked the other way. Stored as plain numbers (JSON), not pickles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

# Isotonic regression needs enough churners to draw a stable staircase; below this, a sigmoid.
ISOTONIC_MIN_POSITIVES = 200
# Probabilities are kept off 0 and 1: no customer is certain to stay or to leave.
EPSILON = 1e-4


@dataclass(frozen=True)
class Calibrator:
    """A monotone map from scores to probabilities: ``sigmoid`` (a, b) or ``isotonic`` (x, y) steps."""

    method: str
    a: float = 1.0
    b: float = 0.0
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype="float64")
        if self.method == "sigmoid":
            risk = 1.0 / (1.0 + np.exp(-(self.a * scores + self.b)))
        else:
            risk = np.interp(scores, self.x, self.y)
        return np.clip(risk, EPSILON, 1.0 - EPSILON)

    def as_dict(self) -> dict[str, object]:
        return {"method": self.method, "a": self.a, "b": self.b, "x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> Calibrator:
        return cls(
            method=str(values["method"]),
            a=float(values["a"]),  # type: ignore[arg-type]
            b=float(values["b"]),  # type: ignore[arg-type]
            x=tuple(values["x"]),  # type: ignore[arg-type]
            y=tuple(values["y"]),  # type: ignore[arg-type]
        )


def fit_calibrator(scores: np.ndarray, label: np.ndarray, method: str = "auto") -> Calibrator:
    """Fit the map on held-out scores (log-odds or any score that rises with risk) and outcomes."""
    scores = np.asarray(scores, dtype="float64")
    label = np.asarray(label, dtype="int64")
    if method == "auto":
        method = "isotonic" if label.sum() >= ISOTONIC_MIN_POSITIVES else "sigmoid"
    if label.min() == label.max():
        # A slice where nobody (or everybody) churned: the best honest probability is that rate, shrunk.
        rate = (label.sum() + 0.5) / (len(label) + 1.0)
        return Calibrator("sigmoid", a=0.0, b=float(np.log(rate / (1 - rate))))
    if method == "isotonic":
        iso = IsotonicRegression(out_of_bounds="clip", y_min=EPSILON, y_max=1 - EPSILON).fit(scores, label)
        return Calibrator(
            "isotonic", x=tuple(iso.X_thresholds_.tolist()), y=tuple(iso.y_thresholds_.tolist())
        )
    platt = LogisticRegression(C=1e4, max_iter=1000).fit(scores.reshape(-1, 1), label)
    slope = float(platt.coef_[0, 0])
    if slope <= 0:
        # Rising only: a slope the slice pulls to zero or below would flip the model's ranking. Say
        # the slice's churn rate to everyone instead.
        rate = label.mean()
        return Calibrator("sigmoid", a=0.0, b=float(np.log(rate / (1 - rate))))
    return Calibrator("sigmoid", a=slope, b=float(platt.intercept_[0]))
