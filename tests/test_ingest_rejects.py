"""Bad input: every problem named with file, line, column and value; nothing written (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from churn.ingest import IngestError, IngestOptions, ingest_file
from churn.tables import CONTRACT_TABLES, ingest_runs, usage_events
from tests import factories

NOW = datetime(2024, 12, 1, tzinfo=UTC)


def ingest(engine: Engine, entity: str, path: Path, **options: object):
    return ingest_file(engine, entity, path, options=IngestOptions(**options), now=NOW)


def snapshot(engine: Engine) -> dict[str, list]:
    with engine.connect() as connection:
        return {
            name: connection.execute(select(table).order_by(*table.primary_key)).all()
            for name, table in {**CONTRACT_TABLES, "runs": ingest_runs}.items()
        }


@pytest.fixture
def loaded(engine: Engine, tmp_path: Path) -> Engine:
    ingest(engine, "customers", factories.write_csv(tmp_path / "customers.csv", factories.customer_rows()))
    ingest(engine, "events", factories.write_csv(tmp_path / "events.csv", factories.event_rows(5)))
    return engine


def rejected(engine: Engine, entity: str, path: Path, **options: object) -> IngestError:
    before = snapshot(engine)
    with pytest.raises(IngestError) as caught:
        ingest(engine, entity, path, **options)
    assert snapshot(engine) == before, "a rejected import must change nothing"
    return caught.value


def test_a_file_with_good_and_bad_rows_is_rejected_whole_with_one_line_per_problem(loaded, tmp_path):
    events = factories.event_rows(8)
    events[1]["occurred_at"] = "31/02/2024"
    events[3]["customer_id"] = "C404"
    events[4]["quantity"] = "lots"
    events[6]["event_type"] = ""
    path = factories.write_csv(tmp_path / "bad.csv", events)

    error = rejected(loaded, "events", path)

    assert error.problems == [
        f"{path}:3: column 'occurred_at': '31/02/2024' is not an ISO 8601 timestamp such as 2024-03-01T09:30:00Z",
        f"{path}:5: column 'customer_id': 'C404' is not a known customer (import customers first)",
        f"{path}:6: column 'quantity': 'lots' is not a number of at least 0",
        f"{path}:8: column 'event_type': is required but empty",
    ]
    assert error.total == 4


def test_only_the_first_problems_are_listed_then_a_count(loaded, tmp_path):
    events = factories.event_rows(50)
    for event in events:
        event["occurred_at"] = "not a time"
    path = factories.write_csv(tmp_path / "bad.csv", events)

    error = rejected(loaded, "events", path)

    assert len(error.problems) == 20
    assert error.total == 50
    assert error.problems[0].startswith(f"{path}:2: column 'occurred_at': 'not a time'")


def test_duplicate_keys_inside_the_file_are_named_with_both_lines(loaded, tmp_path):
    events = factories.event_rows(4)
    events[3]["event_id"] = events[0]["event_id"]
    path = factories.write_csv(tmp_path / "dup.csv", events)

    error = rejected(loaded, "events", path)

    assert error.problems == [f"{path}:5: column 'event_id': 'E00001' is a duplicate key (first at line 2)"]


def test_identical_rows_without_an_id_are_duplicates(loaded, tmp_path):
    event = {"customer_id": "C001", "event_type": "login", "occurred_at": "2024-02-01T10:00:00Z"}
    path = factories.write_csv(tmp_path / "dup.csv", [event, dict(event)])

    error = rejected(loaded, "events", path)

    assert error.problems == [
        f"{path}:3: repeats an earlier row in every column and has no event_id (first at line 2)"
    ]


@pytest.mark.parametrize(
    ("survey", "score", "scale"),
    [
        ("nps", "11", "NPS scale (expected 0 to 10)"),
        ("csat", "0", "CSAT scale (expected 1 to 5)"),
        ("ces", "8", "CES scale (expected 1 to 7)"),
    ],
)
def test_survey_scores_outside_their_scale(loaded, tmp_path, survey, score, scale):
    row = {
        "response_id": "R1",
        "customer_id": "C001",
        "survey": survey,
        "score": score,
        "responded_at": "2024-03-01T10:00:00Z",
    }
    path = factories.write_csv(tmp_path / "s.csv", [row])

    error = rejected(loaded, "surveys", path)

    assert error.problems == [f"{path}:2: column 'score': '{score}' is outside the {scale}"]


def test_an_unknown_survey_kind(loaded, tmp_path):
    row = {
        "response_id": "R1",
        "customer_id": "C001",
        "survey": "nss",
        "score": "3",
        "responded_at": "2024-03-01T10:00:00Z",
    }
    path = factories.write_csv(tmp_path / "s.csv", [row])

    error = rejected(loaded, "surveys", path)

    assert error.problems == [f"{path}:2: column 'survey': 'nss' is not one of nps, csat, ces"]


def test_a_missing_required_column_suggests_map(loaded, tmp_path):
    path = factories.write_csv(
        tmp_path / "e.csv", [{"customer_id": "C001", "type": "login", "ts": "2024-01-01"}]
    )

    error = rejected(loaded, "events", path)

    assert error.problems == [
        f"{path}:1: missing required column 'event_type' (columns: customer_id, type, ts); "
        "if it has another name, add --map THAT_NAME=event_type",
        f"{path}:1: missing required column 'occurred_at' (columns: customer_id, type, ts); "
        "if it has another name, add --map THAT_NAME=occurred_at",
    ]


def test_a_map_naming_a_column_the_file_lacks(loaded, tmp_path):
    path = factories.write_csv(tmp_path / "e.csv", factories.event_rows(1))

    error = rejected(loaded, "events", path, column_map={"When": "occurred_at"})

    assert error.problems[0] == (
        "--map When=occurred_at: the file has no column 'When' "
        "(columns: event_id, customer_id, event_type, occurred_at, user_id, quantity)"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty (expected a header line with column names)"),
        (b"customer_id,,name\nC1,x,y\n", "1: header has an empty column name at position 2"),
        (b"customer_id,name,name\nC1,x,y\n", "1: header names a column twice: name"),
    ],
)
def test_unusable_headers(loaded, tmp_path, content, message):
    path = tmp_path / "customers.csv"
    path.write_bytes(content)

    error = rejected(loaded, "customers", path)

    assert error.problems[0] in (f"{path}: {message}", f"{path}:{message}")


def test_text_that_is_not_utf8(loaded, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_bytes("customer_id,name\nC9,Caf\xe9\n".encode("latin-1"))

    error = rejected(loaded, "customers", path)

    assert error.problems == [f"{path}:2: is not UTF-8 text (save the file as UTF-8)"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("events.xlsx", "unknown file type (expected .csv, .csv.gz or .parquet)"),
        ("missing.csv", "file not found"),
    ],
)
def test_unreadable_files(loaded, tmp_path, name, message):
    path = tmp_path / name
    if name.endswith(".xlsx"):
        path.write_bytes(b"PK\x03\x04")

    error = rejected(loaded, "events", path)

    assert error.problems == [f"{path}: {message}"]


def test_a_corrupt_parquet_file(loaded, tmp_path):
    path = tmp_path / "events.parquet"
    path.write_bytes(b"PAR1 this is not parquet")

    error = rejected(loaded, "events", path)

    assert error.problems[0].startswith(f"{path}: not a readable Parquet file")


def test_time_order_within_a_row(loaded, tmp_path):
    ticket = factories.ticket_rows()[0] | {"resolved_at": "2024-02-28T09:00:00Z"}
    path = factories.write_csv(tmp_path / "t.csv", [ticket])

    error = rejected(loaded, "tickets", path)

    assert error.problems == [
        f"{path}:2: column 'resolved_at': 2024-02-28T09:00:00+00:00 is before opened_at 2024-03-01T09:00:00+00:00"
    ]


def test_events_from_the_future_are_refused(loaded, tmp_path):
    events = factories.event_rows(1)
    events[0]["occurred_at"] = "2030-01-01T00:00:00Z"
    path = factories.write_csv(tmp_path / "e.csv", events)

    error = rejected(loaded, "events", path)

    assert error.problems == [
        f"{path}:2: column 'occurred_at': '2030-01-01T00:00:00Z' is in the future (has it the right time zone?)"
    ]


def test_a_failure_midway_leaves_earlier_chunks_unwritten(loaded, tmp_path):
    events = factories.event_rows(30_000)
    events[-1]["customer_id"] = "C404"
    path = factories.write_csv(tmp_path / "e.csv", events)
    before = len(snapshot(loaded)["events"])

    rejected(loaded, "events", path, chunk_mb=1)

    with loaded.connect() as connection:
        assert connection.execute(select(func.count()).select_from(usage_events)).scalar_one() == before


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param(
            "E1,C001,login,2024-01-01T00:00:00Z\nE2,C001,login\nE3,C001,login,2024-01-01T00:00:00Z,extra\n",
            [(3, 3), (4, 5)],
            id="some rows ragged",
        ),
        pytest.param(  # an exporter that ends data lines, not the header, with a comma
            "E9,C001,login,2024-03-01T09:30:00Z,\nE8,C001,login,2024-03-01T09:31:00Z,\n",
            [(2, 5), (3, 5)],
            id="every row ragged",
        ),
    ],
)
def test_rows_with_the_wrong_number_of_values(loaded, tmp_path, rows, expected):
    path = tmp_path / "ragged.csv"
    path.write_text("event_id,customer_id,event_type,occurred_at\n" + rows, encoding="utf-8")

    error = rejected(loaded, "events", path)

    assert error.problems == [
        f"{path}:{line}: has {values} values, expected 4 (one per header column)" for line, values in expected
    ]


def test_line_numbers_stay_right_after_a_ragged_row_in_a_later_chunk(loaded, tmp_path):
    events = factories.event_rows(60_000)
    events[45_000]["occurred_at"] = "bad"  # line 45002
    path = factories.write_csv(tmp_path / "e.csv", events)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[55_001] = "E-short,C001,login\n"  # line 55002
    path.write_text("".join(lines), encoding="utf-8")

    error = rejected(loaded, "events", path, chunk_mb=1)

    assert error.problems == [
        f"{path}:45002: column 'occurred_at': 'bad' is not an ISO 8601 timestamp such as 2024-03-01T09:30:00Z",
        f"{path}:55002: has 3 values, expected 6 (one per header column)",
    ]


@pytest.mark.parametrize(
    ("seats", "message"),
    [
        ("3000000000", "'3000000000' is too large (at most 2,147,483,647)"),
        ("1e20", "'1e20' is too large (at most 2,147,483,647)"),
    ],
)
def test_whole_numbers_beyond_the_database_range(loaded, tmp_path, seats, message):
    customer = factories.customer_rows(1)[0] | {"customer_id": "C900", "seats": seats}
    path = factories.write_csv(tmp_path / "c.csv", [customer])

    error = rejected(loaded, "customers", path)

    assert error.problems == [f"{path}:2: column 'seats': {message}"]


def test_a_nul_character_in_text(loaded, tmp_path):
    customer = factories.customer_rows(1)[0] | {"customer_id": "C900", "name": "Acme\x00Corp"}
    path = factories.write_csv(tmp_path / "c.csv", [customer])

    error = rejected(loaded, "customers", path)

    assert error.problems == [f"{path}:2: column 'name': 'Acme\\x00Corp' contains a NUL character"]
