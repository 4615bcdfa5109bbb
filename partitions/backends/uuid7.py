"""UUIDv7 and time: its first 48 bits are a Unix timestamp in milliseconds.

PostgreSQL orders uuids byte by byte, so the smallest version-7 uuid of a
millisecond (version nibble 7, variant bits 10, the rest zero) is an exact range
bound: every v7 uuid made at or after that millisecond sorts at or above it, every
earlier one below it.
"""

import uuid
from datetime import UTC, date, datetime, time


def floor_of(day: date) -> str:
    """The smallest UUIDv7 of `day`'s first millisecond (UTC)."""
    moment = datetime.combine(day, time(), tzinfo=UTC)
    millis = int(moment.timestamp()) * 1000
    digits = f"{millis:012x}"
    return f"{digits[:8]}-{digits[8:]}-7000-8000-000000000000"


def moment_of(value: str) -> datetime | None:
    """When a UUIDv7 was made (UTC), or None if `value` is not a uuid of version 7."""
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    if parsed.version != 7:
        return None
    return datetime.fromtimestamp(int(parsed.hex[:12], 16) / 1000, tz=UTC)
