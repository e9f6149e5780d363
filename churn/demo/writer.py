"""Append batches of rows to one entity's CSV or Parquet file, with the contract's columns."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from churn.contract import Entity, Kind
from churn.demo.formatting import iso_utc

FileFormat = Literal["csv", "parquet"]

# Plain ids and names never contain commas or quotes: unquoted CSV keeps the biggest file smaller.
# (Arrow refuses to write a value that would need quotes, so this cannot corrupt the file.)
_UNQUOTED = {"events"}


def _arrow_type(kind: Kind, file_format: FileFormat) -> pa.DataType:
    match kind:
        case Kind.TIMESTAMP:
            # CSV carries ISO 8601 text with an explicit Z; Parquet a real UTC timestamp.
            return pa.string() if file_format == "csv" else pa.timestamp("ms", tz="UTC")
        case Kind.INTEGER:
            return pa.int64()
        case Kind.NUMBER:
            return pa.float64()
        case Kind.BOOLEAN:
            return pa.bool_()
        case _:
            return pa.string()


def _to_arrow(values: object, kind: Kind, arrow_type: pa.DataType) -> pa.Array:
    if isinstance(values, pa.Array):
        return values.cast(arrow_type)
    if kind is Kind.TIMESTAMP:
        seconds = np.asarray(values, dtype=np.float64)
        if pa.types.is_string(arrow_type):
            return iso_utc(seconds)
        missing = np.isnan(seconds)
        millis = np.where(missing, 0, seconds * 1000).astype(np.int64)
        return pa.array(millis, type=pa.int64(), mask=missing).cast(arrow_type)
    if kind in (Kind.INTEGER, Kind.NUMBER):
        numbers = np.asarray(values, dtype=np.float64)
        missing = np.isnan(numbers)
        if kind is Kind.INTEGER:
            return pa.array(np.where(missing, 0, numbers).astype(np.int64), mask=missing)
        return pa.array(numbers, mask=missing)
    if kind is Kind.BOOLEAN:
        return pa.array(np.asarray(values, dtype=bool))
    return pa.array(values, type=pa.string())


class EntityWriter:
    """One entity's output file, written batch by batch so memory stays bounded."""

    def __init__(
        self, path: Path, entity: Entity, file_format: FileFormat, *, extra_columns: tuple[str, ...] = ()
    ) -> None:
        self.path = path
        self.rows = 0
        self._kinds = {f.name: f.kind for f in entity.fields} | dict.fromkeys(extra_columns, Kind.TEXT)
        self._schema = pa.schema(
            [(name, _arrow_type(kind, file_format)) for name, kind in self._kinds.items()]
        )
        self._writer: pa_csv.CSVWriter | pq.ParquetWriter
        if file_format == "csv":
            quoting = "none" if entity.name in _UNQUOTED else "needed"
            options = pa_csv.WriteOptions(quoting_style=quoting)
            self._writer = pa_csv.CSVWriter(str(path), self._schema, write_options=options)
        else:
            self._writer = pq.ParquetWriter(str(path), self._schema, compression="zstd")

    def write(self, columns: Mapping[str, object]) -> None:
        """Append rows given as one array-like per column (timestamps as epoch seconds, NaN = empty)."""
        if set(columns) != set(self._kinds):
            raise ValueError(
                f"{self.path.name}: columns {sorted(columns)} do not match {sorted(self._kinds)}"
            )
        arrays = [
            _to_arrow(columns[name], kind, self._schema.field(name).type)
            for name, kind in self._kinds.items()
        ]
        table = pa.Table.from_arrays(arrays, schema=self._schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        """Flush and close the file."""
        self._writer.close()
