"""The sandbox's data tables: the API contract as it models it, and the constants of its data.

An independent restatement of ``shared/engagelab-ma-stats-api.md`` (it shares nothing with
the provider's own contract module, so a mistake there cannot hide behind it).
"""

from __future__ import annotations

import re

# --------------------------------------------------------------------------------------------
# The contract
# --------------------------------------------------------------------------------------------

#: API path -> stats type.
ENDPOINTS: dict[str, str] = {
    "/v1/stats/journey": "journey",
    "/v1/stats/journey/message": "message",
    "/v1/stats/journey/webhook": "webhook",
}
PATH_BY_TYPE = {v: k for k, v in ENDPOINTS.items()}

#: Admin paths (no auth, loopback only).
ADMIN_PATHS = (
    "/_admin/health",
    "/_admin/counters",
    "/_admin/config",
    "/_admin/reset",
    "/_admin/inject",
)

MAX_JOURNEY_IDS = 100
MAX_WINDOW_DAYS = 31
MAX_LONG = (1 << 63) - 1
TIME_UNITS = ("HOUR", "DAY")
QUERY_PARAMETERS = ("journey_id", "time_unit", "start_time", "end_time")

#: API code -> message.
MESSAGES: dict[int, str] = {
    0: "success",
    -1: "Internal server error",
    40001: "Invalid HTTP parameter",
    40002: "Invalid business parameter",
    40050: "authorization invalid",
    50034: "Project does not exist",
    50202: "Journey does not exist.",
    50217: "Invalid time range.",
    50219: "The number of JourneyIDs exceeds 100.",
    50220: "Invalid time_unit.",
    50221: "Invalid journey_id format.",
    55110: "Too many requests, please try again later.",
}

JOURNEY_COUNTS = (
    "entry_count",
    "conversion_count",
    "completion_count",
    "early_exit_count",
    "in_progress_count",
)
MESSAGE_COUNTS = (
    "entry_count",
    "plan_count",
    "send_count",
    "delivery_count",
    "impression_count",
    "open_count",
    "click_count",
    "conversion_count",
    "revenue_count",
)
WEBHOOK_COUNTS = ("entry_count", "send_count", "send_failure_count")

#: Detail field names in API order, per stats type.
DETAIL_FIELDS: dict[str, tuple[str, ...]] = {
    "journey": ("time", *JOURNEY_COUNTS),
    "message": (
        "component_id",
        "component_name",
        "channel",
        "time",
        *MESSAGE_COUNTS,
        "revenue_amount",
    ),
    "webhook": ("component_id", "component_name", "time", *WEBHOOK_COUNTS),
}

#: Detail fields that are not longs: strings, and the one number.
STRING_FIELDS = frozenset({"component_name", "channel", "time"})
NUMBER_FIELDS = frozenset({"revenue_amount"})

DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
ID_RE = re.compile(r"[0-9]+")

HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)

# --------------------------------------------------------------------------------------------
# The data model's constants
# --------------------------------------------------------------------------------------------

M64 = (1 << 64) - 1
K1 = 0x9E3779B97F4A7C15
K2 = 0xBF58476D1CE4E5B9
K3 = 0x94D049BB133111EB
K4 = 0xD6E8FEB86659FD93
SALT = 0x2545F4914F6CDD1D

#: Relative traffic per UTC hour of day, in percent.
SHAPE = (
    20, 14, 10, 8, 8, 10, 18, 35, 55, 70, 80, 85,
    88, 90, 88, 85, 82, 80, 78, 75, 70, 60, 45, 30,
)  # fmt: skip
SHAPE_SUM = sum(SHAPE)

#: Message channels: (component name prefix, channel).
CHANNELS = (
    ("EMAIL", "Email"),
    ("APP_PUSH", "AppPush"),
    ("SMS", "SMS"),
    ("WEBPUSH", "WebPush"),
    ("WHATSAPP", "WhatsApp"),
)

# Roles, the fourth argument of the hash, keep the hash streams of different uses apart.
ROLE_DAY = 7
ROLE_HOUR = 8
ROLE_LEVEL = 9
ROLE_EXTRA = 10

# Every string the sandbox puts into a row is plain ASCII (names, channels, dates), so its
# JSON is the string in quotes and the row renderer can format it without escaping.
assert all(re.fullmatch(r"[A-Za-z0-9_]+", text) for pair in CHANNELS for text in pair)
