"""Request models: the keyword arguments of every operation, validated before any I/O.

One frozen attrs class per request shape. A field's name is its JSON/query name (trailing ``_``
dropped, or the ``wire`` metadata such as ``page[number]``); ``None`` means "not sent". Path ids
are the only positional fields; ``options`` (how to call, not what to send) is on every request.
Fields come from the seeds and WIRE.md (sections cited per class).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypedDict

import attrs
from attrs import frozen

from telnyx_msg import _validate as v
from telnyx_msg._config import RequestOptions
from telnyx_msg.errors import ValidationError
from telnyx_msg.models import AutorespOp, MetricsTimeFrame

MessageKind = Literal["SMS", "MMS"]
Encoding = Literal["auto", "gsm7", "ucs2"]
TimeFrame = Literal["1h", "3h", "24h", "3d", "7d", "30d"]
Op = Literal["start", "stop", "info"]

class AlphanumericSenderIdFilter(TypedDict, total=False):
    messaging_profile_id: str
class PhoneNumberContains(TypedDict, total=False):
    contains: str
class HostedNumberFilter(TypedDict, total=False):
    messaging_profile_id: str
    phone_number: str | PhoneNumberContains
class HostedNumberSort(TypedDict):
    phone_number: Literal["asc", "desc"]
OptOutFilter = TypedDict("OptOutFilter", {"messaging_profile_id": str, "from": str}, total=False)
class DateRange(TypedDict, total=False):
    gte: str | datetime
    lte: str | datetime


def _opt(validator: v.Validator | None = None, **metadata: str) -> Any:
    return attrs.field(default=None, kw_only=True, validator=validator, metadata=metadata)


def _req(validator: v.Validator) -> Any:
    return attrs.field(kw_only=True, validator=validator)


def _path() -> Any:
    return attrs.field(validator=v.path_id)


def _check_options(_: Any, __: Any, value: Any) -> None:
    if value is not None and not isinstance(value, RequestOptions):
        raise ValidationError("options", "must be telnyx_msg.RequestOptions(...)")


@frozen
class Request:
    """Base of every request: carries per-call ``options``."""

    options: RequestOptions | None = attrs.field(
        default=None, kw_only=True, validator=_check_options
    )


_KIND = v.one_of("SMS", "MMS")
_ENCODING = v.one_of("auto", "gsm7", "ucs2")
_TIME_FRAME = v.one_of(*(t.value for t in MetricsTimeFrame))
_OP = v.one_of(*(o.value for o in AutorespOp))
_MEDIA = v.str_list()


# --- sends (WIRE.md §3) -----------------------------------------------------------------------


@frozen
class _Webhooks(Request):
    webhook_url: str | None = _opt(v.non_empty)
    webhook_failover_url: str | None = _opt(v.non_empty)
    use_profile_webhooks: bool | None = _opt(v.boolean)


@frozen
class _Content(_Webhooks):
    text: str | None = _opt(v.non_empty)
    media_urls: Sequence[str] | None = _opt(_MEDIA)
    subject: str | None = _opt()

    def __attrs_post_init__(self) -> None:
        if self.text is None and not self.media_urls:
            raise ValidationError("text", "a message needs text or media_urls")


@frozen
class _Formatted(_Content):
    type: MessageKind | None = _opt(_KIND)
    auto_detect: bool | None = _opt(v.boolean)


@frozen
class SendMessage(_Formatted):
    """``POST /messages`` (§3.2): long code, short code, alphanumeric or number-pool sender."""

    to: str = _req(v.recipient)
    from_: str | None = _opt(v.any_sender)
    messaging_profile_id: str | None = _opt(v.non_empty)
    encoding: Encoding | None = _opt(_ENCODING)
    send_at: datetime | str | None = _opt(v.date_time)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if self.from_ is None and self.messaging_profile_id is None:
            raise ValidationError("from", "give from_ (a sender) or messaging_profile_id")


@frozen
class SendAlphanumeric(_Webhooks):
    """``POST /messages/alphanumeric_sender_id`` (§3.3): SMS only."""

    from_: str = _req(v.alphanumeric_sender)
    to: str = _req(v.recipient)
    text: str = _req(v.non_empty)
    messaging_profile_id: str = _req(v.non_empty)


@frozen
class SendGroupMms(_Content):
    """``POST /messages/group_mms`` (§3.4): up to 8 recipients."""

    from_: str = _req(v.e164)
    to: Sequence[str] = _req(v.str_list(1, 8, v.e164))


@frozen
class SendLongCode(_Formatted):
    """``POST /messages/long_code`` (§3.5)."""

    from_: str = _req(v.e164)
    to: str = _req(v.recipient)
    encoding: Encoding | None = _opt(_ENCODING)


@frozen
class SendNumberPool(_Formatted):
    """``POST /messages/number_pool`` (§3.6): the profile's pool picks the sender."""

    messaging_profile_id: str = _req(v.non_empty)
    to: str = _req(v.recipient)
    encoding: Encoding | None = _opt(_ENCODING)


@frozen
class SendShortCode(_Formatted):
    """``POST /messages/short_code`` (§3.7)."""

    from_: str = _req(v.recipient)
    to: str = _req(v.recipient)
    encoding: Encoding | None = _opt(_ENCODING)


@frozen
class ScheduleMessage(_Formatted):
    """``POST /messages/schedule`` (§3.8): no ``encoding``, no Idempotency-Key."""

    to: str = _req(v.recipient)
    from_: str | None = _opt(v.any_sender)
    messaging_profile_id: str | None = _opt(v.non_empty)
    send_at: datetime | str | None = _opt(v.date_time)


@frozen
class SendWhatsApp(Request):
    """``POST /messages/whatsapp`` (§3.9): ``whatsapp_message`` is passed through as given."""

    from_: str = _req(v.e164)
    to: str = _req(v.whatsapp_recipient)
    whatsapp_message: Mapping[str, Any] = _req(v.mapping)
    type: Literal["WHATSAPP"] | None = _opt(v.one_of("WHATSAPP"))
    messaging_profile_id: str | None = _opt(v.non_empty)
    webhook_url: str | None = _opt(v.non_empty)


# --- ids --------------------------------------------------------------------------------------


@frozen
class ById(Request):
    """An operation addressed by ``{id}`` only."""

    id: str = _path()


@frozen
class ByMessageId(Request):
    """``GET /messages/group/{message_id}``."""

    message_id: str = _path()


# --- lists (WIRE.md §2) -----------------------------------------------------------------------


@frozen
class _Paged(Request):
    page_number: int | None = _opt(v.positive_int, wire="page[number]")
    page_size: int | None = _opt(v.positive_int, wire="page[size]")


@frozen
class ListAlphanumericSenderIds(_Paged):
    """``GET /alphanumeric_sender_ids``."""

    filter: AlphanumericSenderIdFilter | None = _opt(v.mapping)


@frozen
class ListProfileAlphanumericSenderIds(_Paged):
    """``GET /messaging_profiles/{id}/alphanumeric_sender_ids``."""

    id: str = _path()


@frozen
class CreateAlphanumericSenderId(Request):
    """``POST /alphanumeric_sender_ids`` (§5)."""

    alphanumeric_sender_id: str = _req(v.alphanumeric_sender)
    messaging_profile_id: str = _req(v.non_empty)
    us_long_code_fallback: str | None = _opt(v.e164)


@frozen
class ListHostedNumbers(_Paged):
    """``GET /messaging_hosted_numbers`` (§6)."""

    filter: HostedNumberFilter | None = _opt(v.mapping)
    sort: HostedNumberSort | None = _opt(v.mapping)


@frozen
class UpdateHostedNumber(Request):
    """``PATCH /messaging_hosted_numbers/{id}``; ``messaging_profile_id=""`` unassigns it."""

    id: str = _path()
    messaging_product: str | None = _opt()
    messaging_profile_id: str | None = _opt()
    tags: Sequence[str] | None = _opt(v.str_list())


@frozen
class ListOptOuts(_Paged):
    """``GET /messaging_optouts`` (§7); ``redaction_enabled`` hides recipient numbers."""

    filter: OptOutFilter | None = _opt(v.mapping)
    created_at: DateRange | None = _opt(v.mapping)
    redaction_enabled: bool | None = _opt(v.boolean)


@frozen
class ListProfileMetrics(_Paged):
    """``GET /messaging_profile_metrics`` (§8.1); ``id`` filters to one profile."""

    time_frame: TimeFrame | MetricsTimeFrame | None = _opt(_TIME_FRAME)
    id: str | None = _opt(v.non_empty)


@frozen
class RetrieveProfileMetrics(Request):
    """``GET /messaging_profiles/{id}/metrics`` (§8.2)."""

    id: str = _path()
    time_frame: TimeFrame | MetricsTimeFrame | None = _opt(_TIME_FRAME)


# --- auto-response configs (WIRE.md §9.4) -----------------------------------------------------


@frozen
class ListAutorespConfigs(Request):
    """``GET /messaging_profiles/{profile_id}/autoresp_configs``."""

    profile_id: str = _path()
    country_code: str | None = _opt(v.non_empty)
    created_at: DateRange | None = _opt(v.mapping)
    updated_at: DateRange | None = _opt(v.mapping)


@frozen
class _AutorespBody(Request):
    op: Op | AutorespOp = _req(_OP)
    keywords: Sequence[str] = _req(v.str_list(1))
    country_code: str = _req(v.non_empty)
    resp_text: str | None = _opt()


@frozen
class CreateAutorespConfig(_AutorespBody):
    """``POST /messaging_profiles/{profile_id}/autoresp_configs``."""

    profile_id: str = _path()


@frozen
class AutorespConfigRef(Request):
    """An auto-response config addressed by its id and its profile's id."""

    autoresp_cfg_id: str = _path()
    profile_id: str = attrs.field(kw_only=True, validator=v.path_id)


@frozen
class UpdateAutorespConfig(_AutorespBody):
    """``PUT …/autoresp_configs/{autoresp_cfg_id}``: a full replacement, same body as create."""

    autoresp_cfg_id: str = _path()
    profile_id: str = attrs.field(kw_only=True, validator=v.path_id)
