"""Arithmetic on the host's integer timestamps (milliseconds since the Unix
epoch). There is no clock here on purpose: `now` comes in the request."""

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def hours(h):
    """A duration in (possibly fractional) hours, as milliseconds."""
    return int(h * HOUR_MS)


def hours_between(start, end):
    """Hours elapsed from `start` to `end` (negative if `end` is earlier)."""
    return (end - start) / HOUR_MS


def weekday(t):
    """The UTC weekday of a timestamp, `monday` ... `sunday`
    (1970-01-01 was a Thursday)."""
    return WEEKDAYS[(t // DAY_MS + 3) % 7]


def _civil_from_days(z):
    # Howard Hinnant's days-to-civil algorithm.
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y, m, d)


def rfc3339(t):
    """`2026-11-26T12:00:00Z` (milliseconds only when not zero)."""
    secs, millis = divmod(t, 1000)
    days, rem = divmod(secs, 86_400)
    y, m, d = _civil_from_days(days)
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    frac = f".{millis:03d}" if millis else ""
    return f"{y:04d}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}{frac}Z"
