"""The sandbox's run-time settings, and the rule each setting's values follow (one table)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from datetime import date, datetime, timezone
from typing import Any

UTC = timezone.utc


@dataclass(frozen=True)
class SandboxConfig:
    """The sandbox's run-time settings; change them with :meth:`Sandbox.configure`."""

    api_key: str = "sandbox-key"
    api_secret: str = "sandbox-secret"
    #: Data exists before this instant; ``None`` = today 00:00 UTC at request time.
    available_through: datetime | None = None
    #: IDs that do not exist (every other positive ID does).
    missing_journeys: frozenset[int] = frozenset()
    #: ``"per_journey"`` (error_code 50202 in a code-0 envelope) or ``"whole_call"`` (HTTP 400).
    missing_journey_mode: str = "per_journey"
    #: Requests per second; ``None`` = unlimited.
    rate_limit: float | None = None
    #: Bucket size; ``None`` = ``max(1, rate_limit)``.
    rate_burst: float | None = None
    #: Send ``Retry-After`` with rate-limit 429s.
    send_retry_after: bool = True
    #: Fixed ``Retry-After`` value for rate-limit 429s instead of the computed one.
    retry_after_override: int | None = None
    #: Seconds slept before answering every API request.
    latency: float = 0.0
    #: Probability of an HTTP 500 (code -1).
    failure_rate: float = 0.0
    #: Probability of closing the connection without a response.
    drop_rate: float = 0.0
    #: Probability of sleeping ``hang_seconds`` before answering.
    hang_rate: float = 0.0
    hang_seconds: float = 30.0
    #: Seed of the ``random.Random`` that drives the random faults.
    seed: int = 0
    #: How many ``(path, query)`` entries the request log keeps.
    log_size: int = 10000

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly representation."""
        out = asdict(self)
        out["available_through"] = (
            self.available_through.isoformat() if self.available_through else None
        )
        out["missing_journeys"] = sorted(self.missing_journeys)
        return out


# --------------------------------------------------------------------------------------------
# Rules: each takes (setting name, value) and returns the stored value or raises
# TypeError/ValueError naming the setting.
# --------------------------------------------------------------------------------------------

Rule = Callable[[str, Any], Any]


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string")
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool")
    return value


def _choice(*options: str) -> Rule:
    def rule(name: str, value: Any) -> str:
        if value not in options:
            raise ValueError(f"{name} must be one of {', '.join(repr(o) for o in options)}")
        return str(value)

    return rule


def _number(low: float, high: float | None = None, *, above: bool = False) -> Rule:
    """A number ``>= low`` (``> low`` with ``above``), ``<= high`` when given."""

    def rule(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{name} must be a number")
        number = float(value)
        if math.isnan(number) or number < low or (above and number == low) or (
            high is not None and number > high
        ):
            bound = f"[{low}, {high}]" if high is not None else f"{'>' if above else '>='} {low}"
            raise ValueError(f"{name} must be {bound}")
        return number

    return rule


def _whole(low: int | None = None) -> Rule:
    def rule(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int")
        if low is not None and value < low:
            raise ValueError(f"{name} must be >= {low}")
        return value

    return rule


def _or_none(inner: Rule) -> Rule:
    def rule(name: str, value: Any) -> Any:
        return None if value is None else inner(name, value)

    return rule


def _cutoff(name: str, value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text[-1:] in ("Z", "z"):  # Python 3.10's fromisoformat does not take "Z"
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"{name}: not an ISO datetime: {value!r}") from exc
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, date, ISO string or None")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _id_set(name: str, value: Any) -> frozenset[int]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        value = [p for p in value.split(",") if p.strip()]
    if isinstance(value, int):
        value = [value]
    return frozenset(int(v) for v in value)


#: Setting -> the rule its values follow.
RULES: dict[str, Rule] = {
    "api_key": _text,
    "api_secret": _text,
    "available_through": _cutoff,
    "missing_journeys": _id_set,
    "missing_journey_mode": _choice("per_journey", "whole_call"),
    "rate_limit": _or_none(_number(0.0, above=True)),
    "rate_burst": _or_none(_number(1.0)),
    "send_retry_after": _flag,
    "retry_after_override": _or_none(_whole(0)),
    "latency": _number(0.0),
    "failure_rate": _number(0.0, 1.0),
    "drop_rate": _number(0.0, 1.0),
    "hang_rate": _number(0.0, 1.0),
    "hang_seconds": _number(0.0),
    "seed": _whole(),
    "log_size": _whole(0),
}

CONFIG_FIELDS = frozenset(f.name for f in fields(SandboxConfig))
assert set(RULES) == CONFIG_FIELDS, "every setting needs a rule"


def coerce_config(base: SandboxConfig, changes: Mapping[str, Any]) -> SandboxConfig:
    """``base`` with ``changes`` applied, each value checked and normalised by its rule."""
    unknown = set(changes) - CONFIG_FIELDS
    if unknown:
        raise TypeError(
            f"unknown sandbox setting(s): {sorted(unknown)}; known: {sorted(CONFIG_FIELDS)}"
        )
    return replace(base, **{name: RULES[name](name, value) for name, value in changes.items()})


def today_midnight_utc() -> datetime:
    """The moving default cutoff: today 00:00 UTC."""
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)
