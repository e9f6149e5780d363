"""The reason classifier: a model learned from a company's labelled cancellations, mixed with the vocabulary.

The learned part is a logistic regression on normalised word stems (1-2 grams), normalised character
n-grams and the vocabulary's hit counts as extra features. Its probabilities are then mixed with the
vocabulary's own, with a weight on the learned model that grows with the labelled rows per reason:
with a dozen rows the prior still speaks loudly, with hundreds the company's own words take over.
A reason the vocabulary does not know (a company's own code) is learned from its rows alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import make_pipeline

from training.reasons.normalise import MAX_TEXT_CHARS, language, normalise, stems
from training.reasons.vocabulary import SMOOTHING, VOCABULARY_CLASSIFIER, Vocabulary, vocabulary_for

OTHER = "other"
# Labelled rows per reason at which the learned model and the vocabulary weigh the same.
PRIOR_ROWS = 10
MODEL_FILE = "reason_model.joblib"


class TrainingDataError(ValueError):
    """Too few labelled texts to learn from."""


@dataclass(frozen=True)
class Answer:
    """One text's classification: the reason code, its label and how sure the classifier is."""

    code: str
    label: str
    confidence: float
    classifier: str

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "label": self.label, "confidence": round(self.confidence, 4),
                "classifier": self.classifier}  # fmt: skip


def clip(text: str) -> str:
    """The part of a text that is classified: its first ``MAX_TEXT_CHARS`` characters."""
    return text[:MAX_TEXT_CHARS]


def _stem_words(text: str) -> str:
    return " ".join(stems(text))


class VocabularyClassifier:
    """Classifies with the built-in vocabulary alone: works before anything is labelled."""

    name = VOCABULARY_CLASSIFIER

    def __init__(self, codes: Sequence[str]) -> None:
        self.vocabulary = vocabulary_for(codes)
        self.codes = tuple(codes)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Each text's probability per code (rows in ``texts`` order, columns in ``codes`` order)."""
        return (
            np.vstack([self.vocabulary.probabilities(clip(t)) for t in texts])
            if texts
            else np.empty((0, len(self.codes)))
        )


@dataclass
class ReasonModel:
    """The learned classifier mixed with the vocabulary prior."""

    codes: tuple[str, ...]
    rows_per_code: dict[str, int]
    version: str = "unregistered"
    _vocabulary: Vocabulary | None = field(default=None, repr=False)
    _words: TfidfVectorizer | None = field(default=None, repr=False)
    _chars: TfidfVectorizer | None = field(default=None, repr=False)
    _model: LogisticRegression | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.version

    @classmethod
    def fit(cls, texts: Sequence[str], codes: Sequence[str], taxonomy: Sequence[str]) -> ReasonModel:
        """Learn from labelled texts (codes must be taxonomy codes); needs two reasons at least."""
        counts = Counter(codes)
        if len(counts) < 2:
            raise TrainingDataError(
                f"need labelled texts for at least two reasons to learn from, found {len(counts)}"
            )
        texts = [clip(t) for t in texts]
        model = cls(tuple(taxonomy), dict(counts), _vocabulary=vocabulary_for(taxonomy))
        model._words = TfidfVectorizer(preprocessor=_stem_words, token_pattern=r"\S+", ngram_range=(1, 2),
                                       sublinear_tf=True)  # fmt: skip
        model._chars = TfidfVectorizer(preprocessor=normalise, analyzer="char_wb", ngram_range=(2, 5),
                                       sublinear_tf=True, min_df=1)  # fmt: skip
        features = sparse.hstack(
            [
                model._words.fit_transform(texts),
                model._chars.fit_transform(texts),
                _capped(model._hits(texts)),
            ]
        ).tocsr()
        model._model = LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000)
        model._model.fit(features, list(codes))
        return model

    def _hits(self, texts: Sequence[str]) -> np.ndarray:
        assert self._vocabulary is not None
        return np.vstack([self._vocabulary.hits(t) for t in texts])

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Each text's probability per taxonomy code: the learned model and the prior, mixed."""
        assert self._model is not None and self._words is not None and self._chars is not None
        assert self._vocabulary is not None
        if not texts:
            return np.empty((0, len(self.codes)))
        texts = [clip(t) for t in texts]
        hits = self._hits(texts)
        features = sparse.hstack(
            [self._words.transform(texts), self._chars.transform(texts), _capped(hits)]
        ).tocsr()
        learned = np.zeros((len(texts), len(self.codes)))
        known = [self.codes.index(c) for c in self._model.classes_]
        learned[:, known] = self._model.predict_proba(features)
        prior = (hits + SMOOTHING) / (hits + SMOOTHING).sum(axis=1, keepdims=True)
        # Trust the learned model more the more rows per reason it saw. A text with no vocabulary word
        # has an even prior, which says nothing: the learned model answers alone (how a company's own
        # codes, which have no vocabulary, win).
        weight = self.learned_weight
        mixed = np.where(
            hits.sum(axis=1, keepdims=True) > 0, weight * learned + (1 - weight) * prior, learned
        )
        return mixed / mixed.sum(axis=1, keepdims=True)

    def __getstate__(self) -> dict[str, Any]:
        # The vocabulary is stored as plain phrases, so a saved model never depends on the class layout.
        state = dict(self.__dict__)
        vocabulary = state.pop("_vocabulary")
        state["_phrases"] = dict(vocabulary.phrases) if vocabulary is not None else {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        phrases = state.pop("_phrases", {})
        self.__dict__.update(state)
        self._vocabulary = Vocabulary(self.codes, phrases)

    @property
    def learned_weight(self) -> float:
        """How much the learned model counts against the vocabulary: grows with the rows per reason."""
        rows = sum(self.rows_per_code.values()) / max(len(self.rows_per_code), 1)
        return rows / (rows + PRIOR_ROWS)

    def save(self, folder: Path) -> Path:
        """Write the model to ``folder`` as one joblib file."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / MODEL_FILE
        joblib.dump(self, path)
        return path

    @staticmethod
    def load(path: Path) -> ReasonModel:
        """A model written by ``save``."""
        model = joblib.load(path)
        if not isinstance(model, ReasonModel):
            raise TypeError(f"{path} does not hold a reason model")
        return model


def _capped(hits: np.ndarray) -> sparse.csr_matrix:
    # Vocabulary hits as features: a few words already say it all, so long lists do not dominate.
    return sparse.csr_matrix(np.minimum(hits, 3.0))


Classifier = VocabularyClassifier | ReasonModel


def classify(
    classifier: Classifier, texts: Sequence[str], taxonomy: dict[str, str], min_confidence: float
) -> list[Answer]:
    """Each text's reason; below ``min_confidence``, or a code the taxonomy no longer has, it is 'other'."""
    probabilities = classifier.probabilities(list(texts))
    codes = classifier.codes
    # A model trained before a taxonomy change may know codes the taxonomy dropped: never answer those.
    usable = np.array([c in taxonomy for c in codes])
    answers = []
    for row in probabilities:
        row = np.where(usable, row, 0.0)
        best = int(row.argmax())
        confidence = float(row[best] / row.sum()) if row.sum() > 0 else 0.0
        code = codes[best] if confidence >= min_confidence else OTHER
        answers.append(Answer(code, taxonomy.get(code, code), confidence, classifier.name))
    return answers


class CharNgramBaseline:
    """The plain character n-gram classifier: raw texts, no normalisation, no vocabulary."""

    name = "char_ngram"

    def __init__(self) -> None:
        self.pipeline = make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
            LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000),
        )

    def fit(self, texts: Sequence[str], codes: Sequence[str]) -> CharNgramBaseline:
        self.pipeline.fit([clip(t) for t in texts], list(codes))
        return self

    def predict(self, texts: Sequence[str]) -> list[str]:
        return list(self.pipeline.predict([clip(t) for t in texts]))


@dataclass(frozen=True)
class Evaluation:
    """Held-out macro-F1 per language for the combined classifier, the baseline and the vocabulary."""

    macro_f1: dict[str, dict[str, float | None]]  # classifier → language → figure
    test_rows: dict[str, int]  # language → held-out rows (summed over repeats)
    train_rows_per_reason: int | None
    repeats: int

    def as_dict(self) -> dict[str, Any]:
        return {"macro_f1": self.macro_f1, "test_rows": self.test_rows,
                "train_rows_per_reason": self.train_rows_per_reason, "repeats": self.repeats}  # fmt: skip


def evaluate(
    texts: Sequence[str],
    codes: Sequence[str],
    taxonomy: dict[str, str],
    min_confidence: float,
    *,
    per_reason: int | None = None,
    repeats: int = 5,
    seed: int = 0,
) -> Evaluation:
    """Macro-F1 per language on held-out texts: ``per_reason`` rows per reason train (else 70%), rest test.

    Repeated over ``repeats`` random splits and pooled, since a few dozen rows per reason make any one
    split noisy.
    """
    rng = np.random.default_rng(seed)
    codes = list(codes)
    truth: dict[str, list[str]] = {"en": [], "ar": []}
    predicted: dict[str, dict[str, list[str]]] = {n: {"en": [], "ar": []} for n in
                                                  ("combined", "char_ngram", "vocabulary")}  # fmt: skip
    vocabulary = VocabularyClassifier(list(taxonomy))
    for _ in range(repeats):
        train, test = _split(codes, rng, per_reason)
        if not test:
            raise TrainingDataError("too few labelled texts to hold any out for the evaluation")
        train_texts, train_codes = [texts[i] for i in train], [codes[i] for i in train]
        test_texts = [texts[i] for i in test]
        ours = classify(ReasonModel.fit(train_texts, train_codes, list(taxonomy)), test_texts, taxonomy,
                        min_confidence)  # fmt: skip
        plain = CharNgramBaseline().fit(train_texts, train_codes).predict(test_texts)
        prior = classify(vocabulary, test_texts, taxonomy, min_confidence)
        for i, index in enumerate(test):
            lang = language(texts[index])
            truth[lang].append(codes[index])
            predicted["combined"][lang].append(ours[i].code)
            predicted["char_ngram"][lang].append(plain[i])
            predicted["vocabulary"][lang].append(prior[i].code)
    figures = {
        name: {lang: _macro_f1(truth[lang], guesses[lang]) for lang in truth}
        for name, guesses in predicted.items()
    }
    return Evaluation(figures, {lang: len(rows) for lang, rows in truth.items()}, per_reason, repeats)


def _macro_f1(truth: list[str], guesses: list[str]) -> float | None:
    # Averaged over the reasons that occur in this language's held-out rows.
    if not truth:
        return None
    return float(f1_score(truth, guesses, labels=sorted(set(truth)), average="macro", zero_division=0))


def _split(codes: list[str], rng: np.random.Generator, per_reason: int | None) -> tuple[list[int], list[int]]:
    train: list[int] = []
    test: list[int] = []
    for code in sorted(set(codes)):
        rows = [i for i, c in enumerate(codes) if c == code]
        rng.shuffle(rows)
        size = min(per_reason, len(rows) - 1) if per_reason else max(1, round(0.7 * len(rows)))
        if len(rows) < 2:
            train.extend(rows)
            continue
        train.extend(rows[:size])
        test.extend(rows[size:])
    return sorted(train), sorted(test)
