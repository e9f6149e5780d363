"""Stored cancellations as the classifier sees them, and the codes it fills in (``reason_predictions``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import Engine

from churn.db import WRITES
from churn.tables import cancellations, reason_predictions
from training.reasons.classifier import OTHER, Answer, Classifier, classify


@dataclass(frozen=True)
class StoredReasons:
    """Cancellations with a text: labelled ones to learn from, unlabelled ones to fill, orphans set aside."""

    labelled: list[tuple[str, str, str]]  # (cancellation_id, code, text)
    unlabelled: list[tuple[str, str]]  # (cancellation_id, text): no code, or "other"
    orphaned: Counter[str] = field(default_factory=Counter)  # code outside the taxonomy → rows

    def orphan_note(self) -> str | None:
        """One line naming the stored codes the taxonomy no longer has, if any."""
        if not self.orphaned:
            return None
        listed = ", ".join(f"{code} ({rows})" for code, rows in sorted(self.orphaned.items()))
        total = sum(self.orphaned.values())
        return (
            f"{total} cancellation(s) carry reason codes that are not in the taxonomy: {listed}; "
            "they are kept as stored but not used for training (add the codes back to reasons.taxonomy "
            "to use them)"
        )


def read_reasons(engine: Engine, taxonomy: Collection[str]) -> StoredReasons:
    """Every stored cancellation with a non-blank text, sorted into labelled, unlabelled and orphaned."""
    query = (
        sa.select(cancellations.c.cancellation_id, cancellations.c.reason_code, cancellations.c.reason_text)
        .where(cancellations.c.reason_text.is_not(None))
        .order_by(cancellations.c.cancellation_id)
    )
    labelled: list[tuple[str, str, str]] = []
    unlabelled: list[tuple[str, str]] = []
    orphaned: Counter[str] = Counter()
    with engine.connect() as connection:
        for cancellation_id, code, text in connection.execute(query):
            if not text.strip():
                continue
            code = code.strip() if code else None
            if not code or code == OTHER:
                unlabelled.append((str(cancellation_id), text))
            elif code in taxonomy:
                labelled.append((str(cancellation_id), code, text))
            else:
                orphaned[code] += 1
    return StoredReasons(labelled, unlabelled, orphaned)


def replace_predictions(
    engine: Engine, cancellation_ids: Sequence[str], answers: Sequence[Answer], *, now: datetime
) -> int:
    """Replace every earlier fill with these answers, in one transaction; returns the rows written."""
    rows = [
        {
            "cancellation_id": cancellation_id,
            "reason_code": answer.code,
            "confidence": answer.confidence,
            "classifier": answer.classifier[:64],
            "classified_at": now,
        }
        for cancellation_id, answer in zip(cancellation_ids, answers, strict=True)
    ]
    with engine.connect().execution_options(**WRITES) as connection, connection.begin():
        connection.execute(reason_predictions.delete())
        if rows:
            connection.execute(reason_predictions.insert(), rows)
    return len(rows)


@dataclass(frozen=True)
class Fills:
    """What a refresh of the fills did: texts classified, and how many got a reason other than 'other'."""

    classified: int
    placed: int
    classifier: str


def refresh_fills(
    engine: Engine,
    stored: StoredReasons,
    classifier: Classifier,
    taxonomy: dict[str, str],
    min_confidence: float,
    *,
    now: datetime,
) -> Fills:
    """Classify every stored text without a specific code and replace the earlier fills with the answers."""
    texts = [text for _, text in stored.unlabelled]
    answers = classify(classifier, texts, taxonomy, min_confidence) if texts else []
    written = replace_predictions(engine, [key for key, _ in stored.unlabelled], answers, now=now)
    return Fills(written, sum(answer.code != OTHER for answer in answers), classifier.name)


def stored_predictions(engine: Engine) -> dict[str, tuple[str, float, str]]:
    """The filled-in codes: cancellation id → (code, confidence, classifier)."""
    query = sa.select(
        reason_predictions.c.cancellation_id,
        reason_predictions.c.reason_code,
        reason_predictions.c.confidence,
        reason_predictions.c.classifier,
    )
    with engine.connect() as connection:
        return {str(r[0]): (r[1], float(r[2]), r[3]) for r in connection.execute(query)}
