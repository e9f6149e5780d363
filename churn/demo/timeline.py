"""The demo's calendar: the data window, working weeks by region, holidays and business hours."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np

DAY_S = 86_400

# Region order is the code used everywhere in the demo (customers.region is the name).
REGIONS = ("North America", "EMEA", "MENA", "APAC")
REGION_SHARES = (0.36, 0.29, 0.20, 0.15)
MENA = REGIONS.index("MENA")

# UTC offsets (hours) of the customers' head offices per region, with weights; daylight saving is ignored.
TIMEZONES: dict[int, tuple[tuple[float, ...], tuple[float, ...]]] = {
    0: ((-8.0, -7.0, -6.0, -5.0), (0.30, 0.10, 0.20, 0.40)),
    1: ((0.0, 1.0, 2.0), (0.30, 0.55, 0.15)),
    2: ((2.0, 3.0, 4.0), (0.15, 0.55, 0.30)),
    3: ((5.5, 8.0, 9.0, 10.0), (0.25, 0.40, 0.15, 0.20)),
}

# Weekend kinds: most of the Gulf and Egypt rest on Friday-Saturday, the rest of the world on Saturday-Sunday.
SAT_SUN, FRI_SAT = 0, 1
_WEEKEND_DAYS = {SAT_SUN: (5, 6), FRI_SAT: (4, 5)}
FRI_SAT_SHARE_IN_MENA = 0.65


@dataclass(frozen=True)
class Window:
    """The months of data ending at ``end``: days ``[start, end)``; nothing is dated at or after ``end``."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def start_s(self) -> int:
        return int(datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC).timestamp())

    @property
    def start_epoch_day(self) -> int:
        return self.start_s // DAY_S

    def seconds(self, t: np.ndarray) -> np.ndarray:
        """Epoch seconds (float, NaN kept) for times given in days since the window start."""
        return np.round(self.start_s + np.asarray(t, dtype=np.float64) * DAY_S)


def window_ending(end: date, months: int) -> Window:
    """The window of ``months`` calendar months that ends at ``end`` (same day of month, clamped)."""
    year, month = divmod(end.year * 12 + end.month - 1 - months, 12)
    month += 1
    day = min(end.day, calendar.monthrange(year, month)[1])
    return Window(start=date(year, month, day), end=end)


def civil_dates(epoch_days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month and day for epoch day numbers (proleptic Gregorian, vectorised)."""
    z = np.asarray(epoch_days, dtype=np.int64) + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return year, month, day


def weekday(epoch_days: np.ndarray) -> np.ndarray:
    """Day of week, Monday = 0 (1970-01-01 was a Thursday)."""
    return (np.asarray(epoch_days, dtype=np.int64) + 3) % 7


def weekend_table(window: Window) -> np.ndarray:
    """Whether each window day is a weekend day, per weekend kind: shape (kinds, days)."""
    dow = weekday(window.start_epoch_day + np.arange(window.days))
    return np.stack([np.isin(dow, _WEEKEND_DAYS[kind]) for kind in (SAT_SUN, FRI_SAT)])


def season_table(window: Window) -> np.ndarray:
    """Activity level per region and window day: a late-December dip and a quieter August in EMEA."""
    _, month, day = civil_dates(window.start_epoch_day + np.arange(window.days))
    holidays = ((month == 12) & (day >= 20)) | ((month == 1) & (day <= 2))
    deep = ((month == 12) & np.isin(day, (24, 25, 26, 31))) | ((month == 1) & (day == 1))
    western = np.where(deep, 0.2, np.where(holidays, 0.45, 1.0))
    table = np.ones((len(REGIONS), window.days))
    table[0] = western
    table[1] = western * np.where(month == 8, 0.8, 1.0)
    table[2] = np.where(holidays, 0.85, 1.0)  # the Gulf works through Christmas; expat staff still travel
    table[3] = np.where(holidays, 0.7, 1.0)
    return table


def business_seconds(rng: np.random.Generator, n: int, *, spread: float = 0.12) -> np.ndarray:
    """Local seconds after midnight for human activity: office hours peaking after lunch, some late work."""
    office = np.clip(rng.normal(13.2, 2.6, n), 7.0, 21.5)
    anytime = rng.uniform(0.0, 24.0, n)
    hours = np.where(rng.random(n) < spread, anytime, office)
    return np.floor(hours * 3600.0)


def draw_timezones(rng: np.random.Generator, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """UTC offset in hours and weekend kind for customers of the given regions."""
    offset = np.zeros(len(region))
    for code, (offsets, weights) in TIMEZONES.items():
        rows = np.flatnonzero(region == code)
        offset[rows] = rng.choice(np.array(offsets), size=len(rows), p=np.array(weights))
    fri_sat = (region == MENA) & (rng.random(len(region)) < FRI_SAT_SHARE_IN_MENA)
    return offset, np.where(fri_sat, FRI_SAT, SAT_SUN).astype(np.int8)
