"""The demo company generator: deterministic, contract-shaped, leak-free files with a learnable story."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow.parquet as pq
import pytest

from churn.contract import ENTITIES, SURVEY_SCALES
from churn.demo import DemoSummary, generate_demo_company
from churn.demo.generator import _hidden_fates
from churn.sources import SourceFile
from churn.validation import check_chunk

END = date(2025, 6, 1)
END_AT = pd.Timestamp(END, tz="UTC")
CUSTOMERS, MONTHS, SEED = 2_000, 12, 11
TIMESTAMPS = {
    "customers": ["created_at"],
    "subscriptions": ["started_at", "ended_at"],
    "events": ["occurred_at"],
    "tickets": ["opened_at", "first_response_at", "resolved_at"],
    "surveys": ["responded_at"],
    "cancellations": ["effective_at", "requested_at"],
}
ARABIC = r"[\u0600-\u06FF]"
GRACE = pd.Timedelta(days=7)


def _read(path: Path, entity: str) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    for column in TIMESTAMPS[entity]:
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    out = tmp_path_factory.mktemp("demo")
    return generate_demo_company(out_dir=out, customers=CUSTOMERS, months=MONTHS, seed=SEED, end=END)


@pytest.fixture(scope="module")
def frames(company: DemoSummary) -> dict[str, pd.DataFrame]:
    return {entity: _read(path, entity) for entity, path in company.paths.items()}


@pytest.fixture(scope="module")
def window_start(company: DemoSummary) -> pd.Timestamp:
    return pd.Timestamp(company.window_start, tz="UTC")


def _small(out: Path, seed: int, file_format: str = "csv") -> DemoSummary:
    return generate_demo_company(
        out_dir=out, customers=150, months=4, seed=seed, end=END, file_format=file_format
    )


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_same_inputs_give_byte_identical_files(tmp_path: Path, file_format: str) -> None:
    first = _small(tmp_path / "a", seed=3, file_format=file_format)
    second = _small(tmp_path / "b", seed=3, file_format=file_format)
    for entity, path in first.paths.items():
        assert path.read_bytes() == second.paths[entity].read_bytes(), entity
    assert (tmp_path / "a" / "demo.json").read_bytes() == (tmp_path / "b" / "demo.json").read_bytes()


def test_different_seeds_give_different_companies(tmp_path: Path) -> None:
    first = _small(tmp_path / "a", seed=3)
    second = _small(tmp_path / "b", seed=4)
    for entity in ("customers", "events", "tickets", "surveys"):
        assert first.paths[entity].read_bytes() != second.paths[entity].read_bytes(), entity


def test_csv_and_parquet_hold_the_same_rows(tmp_path: Path) -> None:
    csv = _small(tmp_path / "csv", seed=5)
    parquet = _small(tmp_path / "parquet", seed=5, file_format="parquet")
    assert csv.rows == parquet.rows
    events = pq.read_table(parquet.paths["events"])
    assert str(events.schema.field("occurred_at").type) == "timestamp[ms, tz=UTC]"


def test_columns_are_the_contract_columns(company: DemoSummary) -> None:
    for entity, path in company.paths.items():
        header = pd.read_csv(path, nrows=0).columns.tolist()
        extra = ["industry"] if entity == "customers" else []
        assert header == [*ENTITIES[entity].columns, *extra], entity


def test_manifest_records_parameters_and_row_counts(company: DemoSummary, frames: dict) -> None:
    manifest = json.loads((company.out_dir / "demo.json").read_text(encoding="utf-8"))
    assert (manifest["seed"], manifest["customers"], manifest["months"]) == (SEED, CUSTOMERS, MONTHS)
    assert manifest["end"] == END.isoformat()
    assert manifest["rows"] == {entity: len(frame) for entity, frame in frames.items()} == company.rows
    assert company.rows["customers"] == CUSTOMERS


def test_every_row_passes_the_import_checks(company: DemoSummary) -> None:
    now = datetime(END.year, END.month, END.day, tzinfo=UTC)
    for entity, path in company.paths.items():
        for chunk in SourceFile(path).chunks(16):
            checked = check_chunk(ENTITIES[entity], chunk.frame, timezone=ZoneInfo("UTC"), now=now)
            assert checked.problem_count == 0, [p.message for p in checked.problems]


def test_nothing_is_dated_at_or_after_the_end(frames: dict, window_start: pd.Timestamp) -> None:
    for entity, columns in TIMESTAMPS.items():
        for column in columns:
            assert (frames[entity][column].dropna() < END_AT).all(), (entity, column)
    for entity, column in (("events", "occurred_at"), ("tickets", "opened_at"), ("surveys", "responded_at")):
        assert (frames[entity][column] >= window_start).all(), (entity, column)


def test_timestamps_are_written_in_utc_with_an_offset(company: DemoSummary) -> None:
    events = pd.read_csv(company.paths["events"], dtype=str, nrows=1000)
    assert events["occurred_at"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()


def test_no_events_after_the_last_subscription_ends(frames: dict) -> None:
    subscriptions = frames["subscriptions"]
    last_end = subscriptions.groupby("customer_id")["ended_at"].agg(
        lambda s: s.max() if s.notna().all() else pd.NaT
    )
    ended = last_end.dropna()
    last_event = frames["events"].groupby("customer_id")["occurred_at"].max()
    both = pd.concat([ended.rename("ended"), last_event.rename("event")], axis=1, join="inner")
    assert len(ended) > 50
    assert (both["event"] < both["ended"]).all()


def _churns(subscriptions: pd.DataFrame) -> pd.DataFrame:
    """Ends of subscriptions that no other subscription of the customer follows within the grace gap."""
    ends = subscriptions.dropna(subset=["ended_at"])[["customer_id", "ended_at"]]
    starts = subscriptions[["customer_id", "started_at"]]
    pairs = ends.merge(starts, on="customer_id")
    resumed = pairs[(pairs.started_at >= pairs.ended_at) & (pairs.started_at <= pairs.ended_at + GRACE)]
    keys = ["customer_id", "ended_at"]
    continued = ends.set_index(keys).index.isin(resumed.set_index(keys).index)
    return ends[~continued]


def test_each_churn_has_exactly_one_cancellation_on_its_end_date(frames: dict) -> None:
    churns = _churns(frames["subscriptions"])
    cancellations = frames["cancellations"]
    assert len(churns) > 100
    expected = sorted(zip(churns.customer_id, churns.ended_at, strict=True))
    found = sorted(zip(cancellations.customer_id, cancellations.effective_at, strict=True))
    assert found == expected
    assert (cancellations.requested_at <= cancellations.effective_at).all()
    notice = cancellations.effective_at - cancellations.requested_at
    assert notice.max() <= pd.Timedelta(days=45)


def test_billing_history_has_changes_short_gaps_and_win_backs(frames: dict) -> None:
    subs = frames["subscriptions"].sort_values(["customer_id", "started_at"])
    gap = subs.groupby("customer_id")["started_at"].shift(-1) - subs["ended_at"]
    assert (gap == pd.Timedelta(0)).sum() > 50  # plan changes
    assert ((gap > pd.Timedelta(0)) & (gap < GRACE)).sum() > 5  # short lapses, not churn
    assert (gap > GRACE).sum() > 0  # win-backs
    assert (pd.to_numeric(subs["mrr"]) > 0).all()


def test_cancellation_reasons_follow_the_taxonomy(frames: dict) -> None:
    cancellations = frames["cancellations"]
    taxonomy = {
        "price",
        "product_fit",
        "support",
        "adoption",
        "competitor",
        "business_closed",
        "payment_failed",
        "other",
    }
    assert set(cancellations.reason_code.dropna()) <= taxonomy
    assert 0.5 < cancellations.reason_code.notna().mean() < 0.8
    assert 0.65 < cancellations.reason_text.notna().mean() < 0.95
    involuntary = cancellations[cancellations.voluntary == "false"]
    assert len(involuntary) > 0
    assert (involuntary.reason_code == "payment_failed").all()
    assert (involuntary.source == "billing").all()


def test_free_text_comes_in_english_and_arabic(frames: dict) -> None:
    comments = frames["surveys"].comment.dropna()
    reasons = frames["cancellations"].reason_text.dropna()
    for texts in (comments, reasons):
        arabic = texts.str.contains(ARABIC, regex=True)
        assert arabic.sum() > 0
        assert (~arabic).sum() > arabic.sum()
    # Arabic is written mostly by MENA customers.
    surveys = frames["surveys"].merge(frames["customers"][["customer_id", "region"]], on="customer_id")
    arabic_regions = surveys[surveys.comment.str.contains(ARABIC, regex=True, na=False)].region
    assert (arabic_regions == "MENA").mean() > 0.7


def test_survey_scores_stay_on_their_scales(frames: dict) -> None:
    surveys = frames["surveys"]
    assert set(surveys.survey) == set(SURVEY_SCALES)
    score = pd.to_numeric(surveys.score)
    for kind, (low, high) in SURVEY_SCALES.items():
        kind_scores = score[surveys.survey == kind]
        assert kind_scores.between(low, high).all(), kind
    assert score[surveys.survey == "nps"].nunique() >= 8


def test_open_tickets_have_no_resolution(frames: dict) -> None:
    tickets = frames["tickets"]
    unresolved = tickets.resolved_at.isna()
    assert set(tickets.status[unresolved]) <= {"open", "pending"}
    assert set(tickets.status[~unresolved]) <= {"solved", "closed"}
    assert (tickets.first_response_at.dropna() >= tickets.opened_at[tickets.first_response_at.notna()]).all()
    rated = pd.to_numeric(tickets.csat).dropna()
    assert rated.between(1, 5).all() and 0.1 < len(rated) / len(tickets) < 0.5


def test_weekends_are_quieter_than_weekdays(frames: dict) -> None:
    events = frames["events"].merge(frames["customers"][["customer_id", "region"]], on="customer_id")
    western = events[events.region.isin(["North America", "EMEA"])]
    day = western.occurred_at.dt.day_of_week
    assert (day >= 5).mean() < 0.12  # 2 of 7 days would be 0.29


def test_progress_is_reported_per_batch(tmp_path: Path) -> None:
    seen: list[int] = []
    generate_demo_company(
        out_dir=tmp_path, customers=2_100, months=3, seed=1, end=END, on_progress=seen.append
    )
    assert seen == [2_000, 2_100]


def _events_in(events: pd.DataFrame, windows: pd.DataFrame) -> int:
    """How many events fall in each customer's own [since, until) window, summed over customers."""
    joined = events[["customer_id", "occurred_at"]].merge(windows, on="customer_id")
    return int(((joined.occurred_at >= joined.since) & (joined.occurred_at < joined.until)).sum())


def test_adoption_churners_fade_before_they_leave(frames: dict, window_start: pd.Timestamp) -> None:
    # The hidden fate is read from the generator for this test only; it is never in the files.
    fates = _hidden_fates(customers=CUSTOMERS, months=MONTHS, seed=SEED, end=END)
    month = pd.Timedelta(days=30)
    fading = fates[
        (fates.cause == "adoption") & ~fates.silent & (fates.churn_at < END_AT)
        & (fates.onset_at - month >= window_start)
    ]  # fmt: skip
    events = frames["events"]
    # Usage in the month before the precursors start vs the last month before the churn date.
    before = _events_in(events, fading.assign(since=fading.onset_at - month, until=fading.onset_at))
    last = _events_in(events, fading.assign(since=fading.churn_at - month, until=fading.churn_at))
    assert len(fading) >= 8
    assert last < 0.6 * before

    # Healthy established customers show no such fall over the same span of time.
    created = frames["customers"].set_index("customer_id").created_at
    steady = fates[(fates.cause == "none") & (fates.patch_cause == "none")][["customer_id"]]
    steady = steady[steady.customer_id.map(created) < window_start]
    early = _events_in(events, steady.assign(since=END_AT - 5 * month, until=END_AT - 4 * month))
    late = _events_in(events, steady.assign(since=END_AT - month, until=END_AT))
    assert 0.8 < late / early < 1.25
