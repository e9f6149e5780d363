"""Crontab lines as cron reads them, for the scheduler and for checking the config."""

from __future__ import annotations

from apscheduler.triggers.cron import CronTrigger

# crontab numbers weekdays from Sunday (0 or 7); APScheduler 3's cron fields number them from
# Monday, and its from_crontab passes the numbers through, so "* * * * 1" would fire on Tuesdays.
CRONTAB_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def crontab_trigger(expression: str, timezone: str) -> CronTrigger:
    """A trigger that fires when the crontab line ``expression`` (minute hour day month weekday) would."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (minute hour day month weekday), got {len(fields)}")
    minute, hour, day, month, weekday = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_crontab_weekdays(weekday),
        timezone=timezone,
    )


def _crontab_weekdays(field: str) -> str:
    """A crontab weekday field (numbers from Sunday, names, ranges, steps) as APScheduler day names."""
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.lower().split(","):
        base, _, step = part.partition("/")
        if base == "*":
            first, last = 0, 6
        elif "-" in base:
            first, last = (_crontab_day(end) for end in base.split("-", 1))
        else:
            first = _crontab_day(base)
            last = 6 if step else first
        days.update(day % 7 for day in range(first, last + 1, int(step or 1)))
    return ",".join(CRONTAB_DAYS[day] for day in sorted(days))


def _crontab_day(token: str) -> int:
    return CRONTAB_DAYS.index(token[:3]) if token[:3] in CRONTAB_DAYS else int(token)
