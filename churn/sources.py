"""Reading import files (CSV, gzip'd CSV, Parquet) in bounded chunks, every value as text."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq


class SourceError(ValueError):
    """The file as a whole cannot be read; the message names the file and the problem."""


@dataclass(frozen=True)
class Chunk:
    """Consecutive rows of a file, indexed by their 1-based data row number."""

    frame: pd.DataFrame
    progress: int  # bytes of the file consumed so far, out of SourceFile.size
    # (row, message) for rows that could not be split into the header's columns
    malformed: list[tuple[int, str]] = field(default_factory=list)


class _HashingReader(io.RawIOBase):
    """Counts and hashes the raw bytes as a parser pulls them, so one pass gives progress and digest."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()  # a GzipFile on top does not close the file it reads from
        super().close()

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        self.digest.update(data)
        self.consumed += len(data)
        buffer[: len(data)] = data
        return len(data)


class SourceFile:
    """An import file; ``location(row)`` says where a row is, in the words of the file's format."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise SourceError(f"{path}: file not found")
        if not path.is_file():
            raise SourceError(f"{path}: not a file")
        self.path = path
        name = path.name.lower()
        if name.endswith((".csv", ".csv.gz", ".txt", ".txt.gz")):
            self.format = "csv"
        elif name.endswith((".parquet", ".pq")):
            self.format = "parquet"
        else:
            raise SourceError(f"{path}: unknown file type (expected .csv, .csv.gz or .parquet)")
        self.compressed = name.endswith(".gz")
        self.size = path.stat().st_size  # progress is reported in bytes of the file, for both formats
        self.header = self._read_header()
        self._sha256 = ""

    @property
    def sha256(self) -> str:
        """Digest of the file's bytes; complete once every chunk has been read."""
        return self._sha256

    def location(self, row: int) -> str:
        """``file:line`` for CSV, ``file: row N`` for Parquet."""
        return f"{self.path}:{row + 1}" if self.format == "csv" else f"{self.path}: row {row}"

    def row_label(self, row: int) -> str:
        # CSV: the header is line 1, so data row n is line n + 1 (files without quoted newlines).
        return f"line {row + 1}" if self.format == "csv" else f"row {row}"

    def chunks(self, chunk_mb: int) -> Iterator[Chunk]:
        """Yield the rows in order, a bounded block at a time, every column as nullable text."""
        if self.format == "parquet":
            yield from self._parquet_chunks(chunk_mb)
        else:
            yield from self._csv_chunks(chunk_mb)

    def _open_text_stream(self) -> tuple[BinaryIO, _HashingReader]:
        counting = _HashingReader(self.path.open("rb"))
        buffered = io.BufferedReader(counting, buffer_size=1 << 20)
        stream: BinaryIO = gzip.GzipFile(fileobj=buffered) if self.compressed else buffered
        return stream, counting

    def _read_header(self) -> list[str]:
        if self.format == "parquet":
            return list(self._parquet().schema_arrow.names)
        stream, counting = self._open_text_stream()
        try:
            with stream, counting:
                first_line = stream.readline(1 << 20)
            header = next(csv.reader([first_line.decode("utf-8-sig")]), None)
        except UnicodeDecodeError:
            raise SourceError(
                f"{self.path}:1: the header is not UTF-8 text (save the file as UTF-8)"
            ) from None
        except (OSError, gzip.BadGzipFile, EOFError) as exc:
            raise SourceError(f"{self.path}: cannot read the header line: {exc}") from None
        if not header or not any(h.strip() for h in header):
            raise SourceError(f"{self.path}: the file is empty (expected a header line with column names)")
        names = [h.strip() for h in header]
        blanks = [i + 1 for i, n in enumerate(names) if not n]
        if blanks:
            raise SourceError(f"{self.path}:1: header has an empty column name at position {blanks[0]}")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise SourceError(f"{self.path}:1: header names a column twice: {', '.join(repeated)}")
        return names

    def _csv_chunks(self, chunk_mb: int) -> Iterator[Chunk]:
        stream, counting = self._open_text_stream()
        read_options = pacsv.ReadOptions(
            block_size=chunk_mb << 20,
            column_names=self.header,
            skip_rows=1,
            encoding="utf8",
            use_threads=False,  # keeps line numbers of malformed rows known
        )
        convert = pacsv.ConvertOptions(
            column_types={name: pa.string() for name in self.header},
            strings_can_be_null=True,
            null_values=[""],
            quoted_strings_can_be_null=True,
        )
        # Rows with the wrong number of values are left out of the batches. The reader parses
        # ahead, so it may report them before the batch they belong to: keep every one seen, number
        # the kept rows by their real place in the file, and report each ragged row once.
        ragged: list[pacsv.InvalidRow] = []
        skipped: set[int] = set()

        def keep_ragged(row: pacsv.InvalidRow) -> str:
            ragged.append(row)
            return "skip"

        def report_ragged() -> list[tuple[int, str]]:
            found = []
            for r in ragged:
                row = r.number - 1 if r.number else next_row
                skipped.add(row)
                found.append(
                    (
                        row,
                        f"{self.location(row)}: has {r.actual_columns} values, "
                        f"expected {r.expected_columns} (one per header column)",
                    )
                )
            ragged.clear()
            return found

        parse = pacsv.ParseOptions(invalid_row_handler=keep_ragged)
        next_row = 1
        try:
            reader = pacsv.open_csv(
                stream, read_options=read_options, parse_options=parse, convert_options=convert
            )
            for batch in reader:
                frame = batch.to_pandas(types_mapper=_text_types)
                malformed = report_ragged()
                frame.index, next_row = _row_numbers(next_row, len(frame), skipped)
                yield Chunk(frame=frame, progress=counting.consumed, malformed=malformed)
            malformed = report_ragged()
            if malformed:  # e.g. a file in which every row is ragged: no batch carried them
                empty = pd.DataFrame(
                    {name: pd.Series([], dtype=pd.StringDtype("pyarrow")) for name in self.header}
                )
                yield Chunk(frame=empty, progress=counting.consumed, malformed=malformed)
        except pa.ArrowInvalid as exc:
            message = _arrow_message(exc)
            if "UTF8" in message:
                line = re.search(r"Row #(\d+)", message)
                where = f"{self.path}:{line.group(1)}" if line else str(self.path)
                raise SourceError(f"{where}: is not UTF-8 text (save the file as UTF-8)") from None
            raise SourceError(f"{self.path}: malformed CSV: {message}") from None
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise SourceError(f"{self.path}: cannot read the file: {exc}") from None
        finally:
            stream.close()
            counting.close()
        self._sha256 = counting.digest.hexdigest()

    def _parquet(self) -> pq.ParquetFile:
        try:
            return pq.ParquetFile(self.path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise SourceError(f"{self.path}: not a readable Parquet file: {_arrow_message(exc)}") from None

    def _parquet_chunks(self, chunk_mb: int) -> Iterator[Chunk]:
        parquet = self._parquet()
        rows_per_chunk = max(1_000, (chunk_mb << 20) // 100)
        total_rows = max(parquet.metadata.num_rows, 1)
        first_row = 1
        try:
            for batch in parquet.iter_batches(batch_size=rows_per_chunk):
                frame = batch.to_pandas(types_mapper=_text_types)
                frame.index = pd.RangeIndex(first_row, first_row + len(frame))
                done = first_row - 1 + len(frame)
                yield Chunk(frame=frame, progress=self.size * done // total_rows)
                first_row += len(frame)
        except (pa.ArrowInvalid, OSError) as exc:
            raise SourceError(f"{self.path}: cannot read Parquet data: {_arrow_message(exc)}") from None
        digest = hashlib.sha256()
        with self.path.open("rb") as raw:
            for block in iter(lambda: raw.read(1 << 20), b""):
                digest.update(block)
        self._sha256 = digest.hexdigest()


def _row_numbers(first_row: int, kept: int, skipped: set[int]) -> tuple[pd.Index, int]:
    """Data row numbers of a batch's ``kept`` rows, passing over skipped rows; and the next number."""
    if not any(first_row <= row < first_row + kept + len(skipped) for row in skipped):
        return pd.RangeIndex(first_row, first_row + kept), first_row + kept
    numbers: list[int] = []
    row = first_row
    while len(numbers) < kept:
        if row not in skipped:
            numbers.append(row)
        row += 1
    return pd.Index(numbers), row


def _text_types(arrow_type: pa.DataType) -> pd.api.extensions.ExtensionDtype | None:
    # Keep text as pandas' string dtype whatever the pandas version; typed Parquet columns
    # (numbers, timestamps, booleans) stay typed and are checked as such.
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype("pyarrow")  # zero-copy from Arrow, and vectorised string functions
    if pa.types.is_integer(arrow_type):
        return pd.Int64Dtype()  # not float64 when there are nulls: id 101 must stay "101"
    return None


def _arrow_message(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]
