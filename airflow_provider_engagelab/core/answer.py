"""One call's answer read from a buffer: decoded whole when it is small, batch by batch when large.

What the sync hook does with the body file it mapped (:mod:`airflow_provider_engagelab.hooks._bodies`).
An answer of up to :data:`DECODE_BATCH_BYTES` of JSON is decoded by
:func:`~.parsing.parse_response` in one pass, as the async hook decodes its answers. A larger one
(a 100-journey x 31-day HOUR message answer is ~40 MB, ~150k rows) first gets one pass over its
envelope: ``code``, ``message`` and the entries, each entry's ``detail`` kept as raw JSON
(``msgspec.Raw``: a view of the buffer, no copy). That pass reads the whole body, so every
failure a new attempt can fix (a truncated or replaced body, a non-zero ``code``) is raised
there, inside the call's retry loop, and it checks the entries' bookkeeping (each requested
journey once). The detail rows are then decoded with the same typed records, whole entries at a
time (a journey's rows are never split) of at most :data:`DECODE_BATCH_BYTES` of JSON together:
one batch of records exists at a time, each handed out as a
:class:`~.records.ParsedResponse`. A contract violation in a batch's rows (a wrong type, a time
outside the window) raises when that batch is decoded, after the earlier batches were handed
out: a sink publishes nothing then (the task fails before its commit), a stream of rows has
yielded those batches' rows. Pure: no Airflow imports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import msgspec

from airflow_provider_engagelab.core.parsing import (
    check_entries,
    check_status,
    collect_records,
    detail_decoder,
    error_for,
    known_extras,
    learn_extra,
    parse_response,
    remember_extras,
)
from airflow_provider_engagelab.core.planning import PlannedCall
from airflow_provider_engagelab.core.records import JourneyError, ParsedResponse
from airflow_provider_engagelab.core.wording import word_refusal
from airflow_provider_engagelab.exceptions import EngageLabResponseError

__all__ = ["DECODE_BATCH_BYTES", "Answer", "read_answer"]

#: JSON bytes of detail rows decoded at once (~30k message rows, ~11 MiB of records); answers
#: up to this size are decoded whole.
DECODE_BATCH_BYTES = 8 * 1024 * 1024


class _Entry(msgspec.Struct, gc=False):
    journey_id: int
    error_code: int = 0
    time_unit: str | msgspec.UnsetType = msgspec.UNSET
    detail: msgspec.Raw = msgspec.Raw()


class _Envelope(msgspec.Struct, gc=False):
    code: int
    message: Any = ""
    data: list[_Entry] | None = None


_ENVELOPE = msgspec.json.Decoder(_Envelope)


class _Rows(NamedTuple):
    journey_id: int
    detail: list[Any]


def _no_detail(entry: _Entry) -> bool:
    return len(entry.detail) == 0 or (len(entry.detail) == 4 and bytes(entry.detail) == b"null")


class Answer:
    """The rows of one successful call as :class:`ParsedResponse` batches, in answer order.

    The first batch carries the answer's journey errors. Iterate :meth:`batches` once, then
    :meth:`close` (the owner of the buffer frees it then).
    """

    def __init__(self, call: PlannedCall | None, batches: Iterator[ParsedResponse],
                 on_close: Callable[[], None] | None = None) -> None:
        self.call = call
        self._batches: Iterator[ParsedResponse] | None = batches
        self._on_close = on_close

    def batches(self) -> Iterator[ParsedResponse]:
        """The batches, decoded one at a time as they are asked for."""
        if self._batches is None:
            raise RuntimeError("the batches of an answer can be iterated only once")
        batches, self._batches = self._batches, None
        return batches

    def close(self) -> None:
        """Drop what is left of the answer and free its buffer."""
        batches, self._batches = self._batches, None
        close = getattr(batches, "close", None)
        if close is not None:
            close()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    def __enter__(self) -> Answer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_answer(
    call: PlannedCall,
    status: int,
    body: bytes | memoryview,
    *,
    retry_after: float | None = None,
    batch_bytes: int | None = None,
    drop_pages: Callable[[], None] | None = None,
    on_close: Callable[[], None] | None = None,
) -> Answer:
    """Check one HTTP answer and prepare its rows, or raise the mapped error (see the module).

    :param body: the raw body; it must stay valid until the answer is closed.
    :param retry_after: the parsed ``Retry-After`` header, if any.
    :param batch_bytes: JSON bytes of detail rows per batch (default :data:`DECODE_BATCH_BYTES`);
        a body of at most that many bytes is decoded whole.
    :param drop_pages: called once a pass over the buffer is done (an ``mmap`` drops the pages
        it read from memory).
    :param on_close: frees the buffer: called at once for a body decoded whole, else when the
        answer is closed (or when this raises).
    """
    batch_bytes = DECODE_BATCH_BYTES if batch_bytes is None else batch_bytes
    try:
        if len(body) <= batch_bytes:
            parsed = parse_response(call, status, body, retry_after=retry_after)
            if on_close is not None:
                on_close()
            return Answer(call, iter((parsed,)))
        body = check_status(call, status, body, retry_after=retry_after)
        try:
            envelope = _ENVELOPE.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise word_refusal(call, status, bytes(body), exc) from None
        if envelope.code != 0:
            raise error_for(envelope.code, str(envelope.message or ""), status, retry_after=retry_after)
        good, errors = check_entries(call, status, envelope.data, _no_detail)
        del envelope
        if drop_pages is not None:
            drop_pages()
    except BaseException:
        if on_close is not None:
            on_close()
        raise
    return Answer(call, _batches(call, status, good, errors, batch_bytes, drop_pages), on_close)


def _batches(
    call: PlannedCall,
    status: int,
    good: list[tuple[int, _Entry]],
    errors: list[JourneyError],
    batch_bytes: int,
    drop_pages: Callable[[], None] | None,
) -> Iterator[ParsedResponse]:
    """Decode the entries ``batch_bytes`` of JSON at a time (whole entries); the first has the errors."""
    group: list[tuple[int, _Entry]] = []
    size = 0
    groups: list[list[tuple[int, _Entry]]] = []
    for item in good:
        if group and size + len(item[1].detail) > batch_bytes:
            groups.append(group)
            group, size = [], 0
        group.append(item)
        size += len(item[1].detail)
    if group or not groups:
        groups.append(group)
    del good, group
    while groups:
        parsed = _decode_batch(call, status, groups.pop(0), errors)
        errors = []
        if drop_pages is not None:
            drop_pages()
        yield parsed
        del parsed


def _decode_batch(
    call: PlannedCall, status: int, group: list[tuple[int, _Entry]], errors: list[JourneyError]
) -> ParsedResponse:
    """The typed records of some entries, checked as a whole answer's are."""
    extras = known_extras(call)
    while True:
        decoder = detail_decoder(call.stats_type, call.time_unit, extras)
        rows: list[_Rows] = []
        for index, entry in group:
            try:
                rows.append(_Rows(entry.journey_id, decoder.decode(entry.detail)))
            except msgspec.ValidationError as exc:
                at = _at_entry(exc, index)
                learned = learn_extra(call, status, extras, at)
                if learned is None:
                    raise _refusal(call, status, index, entry, at) from None
                extras = learned
                break  # decode the batch again with the new field
            except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # valid JSON, but not UTF-8
                raise EngageLabResponseError(
                    f"invalid response from {call.endpoint}: the rows of journey {entry.journey_id} "
                    f"are not valid JSON text ({exc}); the call's earlier rows were already used, "
                    "so it is not retried here: the task's retry fetches it again",
                    status=status, retryable=True,
                ) from None
        else:
            remember_extras(call, extras)
            return collect_records(call, status, rows, errors, extras)


def _at_entry(exc: msgspec.ValidationError, index: int) -> msgspec.ValidationError:
    """``exc`` of an entry's ``detail`` decoded alone, with the path it has in the whole answer."""
    text = str(exc)
    head, sep, where = text.rpartition(" - at `$")
    if not sep:
        return msgspec.ValidationError(f"{text} - at `$.data[{index}].detail`")
    return msgspec.ValidationError(f"{head} - at `$.data[{index}].detail{where}")


def _refusal(call: PlannedCall, status: int, index: int, entry: _Entry, exc: Exception) -> Exception:
    """The error of a refused ``detail``, worded as for the whole answer, from that entry alone.

    The wording reads the value at the error's path from a lenient decoding of the body: the
    entry, at its index, is enough (not the whole ~40 MB answer).
    """
    alone = (
        b'{"code":0,"message":"success","data":[' + b"null," * index
        + b'{"journey_id":%d,"error_code":0,"detail":' % entry.journey_id + bytes(entry.detail) + b"}]}"
    )
    return word_refusal(call, status, alone, exc)
