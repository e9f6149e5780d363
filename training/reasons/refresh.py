"""Refresh the classifier's fills with the best classifier: the newest trained, or the vocabulary."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from churn.config import ProductConfig
from churn.settings import Settings
from training.reasons.classifier import VocabularyClassifier
from training.reasons.store import Fills, read_reasons, refresh_fills
from training.reasons.tracking import load_reason_model


def refresh_with_best_classifier(
    engine: Engine, settings: Settings, config: ProductConfig, *, now: datetime
) -> Fills:
    """Classify every stored cancellation text without a specific code (the retrain and the demo do this)."""
    taxonomy = {code: reason.label for code, reason in config.reasons.taxonomy.items()}
    classifier = load_reason_model(settings) or VocabularyClassifier(list(taxonomy))
    stored = read_reasons(engine, taxonomy)
    return refresh_fills(engine, stored, classifier, taxonomy, config.reasons.min_confidence, now=now)
