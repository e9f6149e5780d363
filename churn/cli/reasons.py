"""`churn reasons train|classify`: the cancellation reason classifier, trained on the stored cancellations."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from churn.cli.common import UserError, console, errors, load_context, open_engine, user_errors
from churn.clock import utc_now

if TYPE_CHECKING:
    from training.reasons.classifier import Evaluation

reasons_app = typer.Typer(
    help="Cancellation reasons: classify what customers wrote when they left into the reason taxonomy.",
    no_args_is_help=True,
)

# Fewer held-out rows than this per language make a figure too noisy to print without a warning.
_FEW_TEST_ROWS = 30


@reasons_app.command("train")
def train(
    per_reason: Annotated[
        int | None,
        typer.Option(
            min=2,
            max=10_000,
            help="Evaluate as if only this many labelled texts per reason were there to train on "
            "(default: 70% of them); the registered model always learns from all.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON for scripts.")] = False,
) -> None:
    """Learn the reason classifier from the stored cancellations that have a code and a text.

    Holds some of them out to measure macro-F1 per language (English, Arabic) beside a plain
    character n-gram classifier trained on the same rows, registers the model in MLflow as
    `churn-reasons`, then fills in the reason for cancellations with a text but no code (or
    `other`), replacing earlier fills. Codes that are no longer in the taxonomy are reported and left out.
    """
    from training.reasons.classifier import ReasonModel, TrainingDataError, evaluate
    from training.reasons.store import read_reasons, refresh_fills
    from training.reasons.tracking import log_reason_run

    with user_errors():
        settings, config = load_context()
        engine = open_engine(settings)
        taxonomy = {code: reason.label for code, reason in config.reasons.taxonomy.items()}
        stored = read_reasons(engine, taxonomy)
        note = stored.orphan_note()
        if note:
            errors.print(f"warning: {note}", highlight=False)
        if not stored.labelled:
            raise UserError(
                "no stored cancellation has both a reason code and a reason text to learn from; "
                "`churn reasons classify` uses the built-in vocabulary until some do"
            )
        texts = [text for _, _, text in stored.labelled]
        codes = [code for _, code, _ in stored.labelled]
        try:
            evaluation = evaluate(
                texts, codes, taxonomy, config.reasons.min_confidence, per_reason=per_reason
            )
            model = ReasonModel.fit(texts, codes, list(taxonomy))
        except TrainingDataError as exc:
            raise UserError(f"cannot train the reason classifier: {exc}") from None
        logged = log_reason_run(
            settings,
            model,
            evaluation,
            labelled_rows=len(stored.labelled),
            orphaned_rows=sum(stored.orphaned.values()),
        )
        model.version = f"churn-reasons/{logged.version}"
        fills = refresh_fills(engine, stored, model, taxonomy, config.reasons.min_confidence, now=utc_now())
        filled, recovered = fills.classified, fills.placed
        if as_json:
            payload = {
                "version": logged.version,
                "run_id": logged.run_id,
                "labelled_rows": len(stored.labelled),
                "orphaned": dict(stored.orphaned),
                "evaluation": evaluation.as_dict(),
                "filled": filled,
                "filled_not_other": recovered,
            }
            sys.stdout.write(json.dumps(payload, indent=2) + "\n")
            return
        _print_evaluation(evaluation)
        console.print(
            f"Learned from {len(stored.labelled)} labelled cancellation texts; registered as churn-reasons "
            f"version {logged.version} (MLflow run {logged.run_id}).",
            highlight=False,
        )
        console.print(
            f"Filled the reason for {filled} cancellation(s) with a text but no code: {recovered} got a "
            f"reason, {filled - recovered} stay 'other' (confidence below {config.reasons.min_confidence}).",
            highlight=False,
        )


@reasons_app.command("classify")
def classify_texts(
    texts: Annotated[list[str], typer.Argument(help="One or more cancellation texts, English or Arabic.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Say which reason each text gives, with a confidence: one line per text.

    Uses the newest model from `churn reasons train`, or the built-in vocabulary before one is
    trained. A text less sure than reasons.min_confidence is `other`. Texts longer than 2,000
    characters are classified on their first 2,000.

    Example: `churn reasons classify "too expensive for us" "الدعم الفني بطيء جداً"`.
    """
    from training.reasons.classifier import VocabularyClassifier, classify
    from training.reasons.normalise import MAX_TEXT_CHARS, normalise
    from training.reasons.tracking import load_reason_model

    with user_errors():
        settings, config = load_context()
        for number, text in enumerate(texts, start=1):
            if not normalise(text):
                raise UserError(f"text {number} is empty (no letters or digits); nothing was classified")
        for number, text in enumerate(texts, start=1):
            if len(text) > MAX_TEXT_CHARS:
                errors.print(
                    f"note: text {number} has {len(text):,} characters; classified on its first "
                    f"{MAX_TEXT_CHARS:,}",
                    highlight=False,
                )
        taxonomy = {code: reason.label for code, reason in config.reasons.taxonomy.items()}
        classifier = load_reason_model(settings) or VocabularyClassifier(list(taxonomy))
        answers = classify(classifier, texts, taxonomy, config.reasons.min_confidence)
        for answer in answers:
            if as_json:
                sys.stdout.write(json.dumps(answer.as_dict(), ensure_ascii=False) + "\n")
            else:
                # Tab-separated and unstyled, so a script can cut the fields.
                sys.stdout.write(f"{answer.code}\t{answer.label}\t{answer.confidence:.2f}\n")


def _print_evaluation(evaluation: Evaluation) -> None:
    table = Table(title=f"Held-out macro-F1 per language ({evaluation.repeats} random splits, pooled)")
    table.add_column("classifier")
    languages = list(evaluation.test_rows)
    names = {"en": "English", "ar": "Arabic"}
    for lang in languages:
        table.add_column(f"{names.get(lang, lang)} ({evaluation.test_rows[lang]} held-out)", justify="right")
    labels = {
        "combined": "learned + vocabulary",
        "char_ngram": "plain char n-grams",
        "vocabulary": "vocabulary alone",
    }
    for name, figures in evaluation.macro_f1.items():
        table.add_row(labels.get(name, name), *(_figure(figures[lang]) for lang in languages))
    console.print(table)
    sparse = [
        names.get(lang, lang) for lang, rows in evaluation.test_rows.items() if 0 < rows < _FEW_TEST_ROWS
    ]
    if sparse:
        console.print(
            f"Few held-out texts in {', '.join(sparse)}: read those figures as rough.", highlight=False
        )


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
