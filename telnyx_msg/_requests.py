"""Request models: the keyword arguments of every operation, validated before any I/O.

One frozen attrs class per request shape. A field's name is its JSON/query name (trailing ``_``
dropped, or the ``wire`` metadata such as ``page[number]``); ``None`` means "not sent". Path ids
are the only positional fields; ``options`` (how to call, not what to send) is on every request.
Fields come from Telnyx's API reference and OpenAPI definition (see docs/wire.md, sections
cited per class as §N).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypedDict

from attrs import field, frozen

from telnyx_msg import _validate as v
from telnyx_msg._config import RequestOptions
from telnyx_msg._validate import NOT_GIVEN, NotGiven
from telnyx_msg.errors import ValidationError
from telnyx_msg.models import AutorespOp, MetricsTimeFrame, _fields_repr

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


class NameMatch(TypedDict, total=False):
    eq: str
    contains: str


class MessagingProfileFilter(TypedDict, total=False):
    # The definition documents both the deepObject filter[name] (a string) and
    # filter[name][eq] / filter[name][contains]; one request can carry only one of the forms.
    name: str | NameMatch


class PhoneNumberFilter(TypedDict, total=False):
    messaging_profile_id: str
    phone_number: str | PhoneNumberContains
    type: Literal["tollfree", "longcode", "shortcode"]


class ShortCodeFilter(TypedDict, total=False):
    messaging_profile_id: str


class _NumberPoolRequired(TypedDict):
    long_code_weight: float
    toll_free_weight: float
    skip_unhealthy: bool


class NumberPoolSettingsParam(_NumberPoolRequired, total=False):
    sticky_sender: bool
    geomatch: bool


class _UrlShortenerRequired(TypedDict):
    domain: str


class UrlShortenerSettingsParam(_UrlShortenerRequired, total=False):
    prefix: str
    replace_blacklist_only: bool
    send_webhooks: bool


WebhookApiVersion = Literal["1", "2", "2010-04-01"]


def _check_options(_: Any, __: Any, value: Any) -> None:
    if value is not None and not isinstance(value, RequestOptions):
        raise ValidationError("options", "must be telnyx_msg.RequestOptions(...)")


_API_VERSION = v.one_of("1", "2", "2010-04-01")
_MAX_64 = v.pattern(r"(?s).{0,64}", "at most 64 characters")
_PROFILE_FILTER = v.query_object
_PHONE_FILTER = v.object_with(type=("tollfree", "longcode", "shortcode"))
_SORT = v.object_with(phone_number=("asc", "desc"))
# The auto-response configs' created_at / updated_at bounds are plain strings in the definition.
_TEXT_RANGE = v.bounds(date_times=False)


@frozen(repr=False, eq=False)
class Request:
    """Base of every request: carries per-call ``options``."""

    options: RequestOptions | None = field(default=None, kw_only=True, validator=_check_options)

    __repr__ = _fields_repr


_KIND = v.one_of("SMS", "MMS")
_ENCODING = v.one_of("auto", "gsm7", "ucs2")
_TIME_FRAME = v.one_of(*(t.value for t in MetricsTimeFrame))
_OP = v.one_of(*(o.value for o in AutorespOp))
_MEDIA = v.str_list(item=v.http_url)


# --- sends (docs/wire.md §3) ----------------------------------------------------------------------


@frozen(repr=False, eq=False)
class _Webhooks(Request):
    webhook_url: str | None = field(default=None, kw_only=True, validator=v.http_url)
    webhook_failover_url: str | None = field(default=None, kw_only=True, validator=v.http_url)
    use_profile_webhooks: bool | None = field(default=None, kw_only=True, validator=v.boolean)


@frozen(repr=False, eq=False)
class _Content(_Webhooks):
    text: str | None = field(default=None, kw_only=True, validator=v.non_empty)
    media_urls: Sequence[str] | None = field(default=None, kw_only=True, validator=_MEDIA)
    subject: str | None = field(default=None, kw_only=True, validator=v.string)

    def __attrs_post_init__(self) -> None:
        if self.text is None and not self.media_urls:
            raise ValidationError("text", "a message needs text or media_urls")


@frozen(repr=False, eq=False)
class _Formatted(_Content):
    type: MessageKind | None = field(default=None, kw_only=True, validator=_KIND)
    auto_detect: bool | None = field(default=None, kw_only=True, validator=v.boolean)


@frozen(repr=False, eq=False)
class SendMessage(_Formatted):
    """``POST /messages`` (§3.2): long code, short code, alphanumeric or number-pool sender."""

    to: str = field(kw_only=True, validator=v.recipient)
    from_: str | None = field(default=None, kw_only=True, validator=v.any_sender)
    messaging_profile_id: str | None = field(default=None, kw_only=True, validator=v.non_empty)
    encoding: Encoding | None = field(default=None, kw_only=True, validator=_ENCODING)
    send_at: datetime | str | None = field(default=None, kw_only=True, validator=v.date_time)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if self.from_ is None and self.messaging_profile_id is None:
            raise ValidationError("from", "give from_ (a sender) or messaging_profile_id")


@frozen(repr=False, eq=False)
class SendAlphanumeric(_Webhooks):
    """``POST /messages/alphanumeric_sender_id`` (§3.3): SMS only."""

    from_: str = field(kw_only=True, validator=v.alphanumeric_sender)
    to: str = field(kw_only=True, validator=v.recipient)
    text: str = field(kw_only=True, validator=v.non_empty)
    messaging_profile_id: str = field(kw_only=True, validator=v.non_empty)


@frozen(repr=False, eq=False)
class SendGroupMms(_Content):
    """``POST /messages/group_mms`` (§3.4): up to 8 recipients."""

    from_: str = field(kw_only=True, validator=v.e164)
    # The definition's ``to`` items are ``ToNumber`` (an address: +E.164 or a short code).
    to: Sequence[str] = field(kw_only=True, validator=v.str_list(1, 8, v.recipient))


@frozen(repr=False, eq=False)
class SendLongCode(_Formatted):
    """``POST /messages/long_code`` (§3.5)."""

    from_: str = field(kw_only=True, validator=v.e164)
    to: str = field(kw_only=True, validator=v.recipient)
    encoding: Encoding | None = field(default=None, kw_only=True, validator=_ENCODING)


@frozen(repr=False, eq=False)
class SendNumberPool(_Formatted):
    """``POST /messages/number_pool`` (§3.6): the profile's pool picks the sender."""

    messaging_profile_id: str = field(kw_only=True, validator=v.non_empty)
    to: str = field(kw_only=True, validator=v.recipient)
    encoding: Encoding | None = field(default=None, kw_only=True, validator=_ENCODING)


@frozen(repr=False, eq=False)
class SendShortCode(_Formatted):
    """``POST /messages/short_code`` (§3.7)."""

    from_: str = field(kw_only=True, validator=v.recipient)
    to: str = field(kw_only=True, validator=v.recipient)
    encoding: Encoding | None = field(default=None, kw_only=True, validator=_ENCODING)


@frozen(repr=False, eq=False)
class ScheduleMessage(_Formatted):
    """``POST /messages/schedule`` (§3.8): no ``encoding``, no Idempotency-Key."""

    to: str = field(kw_only=True, validator=v.recipient)
    from_: str | None = field(default=None, kw_only=True, validator=v.any_sender)
    messaging_profile_id: str | None = field(default=None, kw_only=True, validator=v.non_empty)
    send_at: datetime | str | None = field(default=None, kw_only=True, validator=v.date_time)


@frozen(repr=False, eq=False)
class SendWhatsApp(Request):
    """``POST /messages/whatsapp`` (§3.9): ``whatsapp_message`` is passed through as given."""

    from_: str = field(kw_only=True, validator=v.e164)
    to: str = field(kw_only=True, validator=v.whatsapp_recipient)
    whatsapp_message: Mapping[str, Any] = field(kw_only=True, validator=v.mapping)
    type: Literal["WHATSAPP"] | None = field(
        default=None, kw_only=True, validator=v.one_of("WHATSAPP")
    )
    messaging_profile_id: str | None = field(default=None, kw_only=True, validator=v.non_empty)
    webhook_url: str | None = field(default=None, kw_only=True, validator=v.http_url)


# --- ids --------------------------------------------------------------------------------------


@frozen(repr=False, eq=False)
class ById(Request):
    """An operation addressed by ``{id}`` only."""

    id: str = field(validator=v.path_id)


@frozen(repr=False, eq=False)
class ByMessageId(Request):
    """``GET /messages/group/{message_id}``."""

    message_id: str = field(validator=v.path_id)


# --- lists (docs/wire.md §2) ----------------------------------------------------------------------


@frozen(repr=False, eq=False)
class _Paged(Request):
    page_number: int | None = field(
        default=None, kw_only=True, validator=v.positive_int, metadata={"wire": "page[number]"}
    )
    # The definition caps page[size] only where a list uses its shared PageConsolidated
    # parameter (below); elsewhere it states no maximum, so none is enforced here.
    page_size: int | None = field(
        default=None, kw_only=True, validator=v.positive_int, metadata={"wire": "page[size]"}
    )


@frozen(repr=False, eq=False)
class _PageConsolidated(_Paged):
    page_size: int | None = field(
        default=None, kw_only=True, validator=v.page_size, metadata={"wire": "page[size]"}
    )


@frozen(repr=False, eq=False)
class ListAlphanumericSenderIds(_Paged):
    """``GET /alphanumeric_sender_ids``."""

    filter: AlphanumericSenderIdFilter | None = field(
        default=None, kw_only=True, validator=v.query_object
    )


@frozen(repr=False, eq=False)
class ListProfileAlphanumericSenderIds(_Paged):
    """``GET /messaging_profiles/{id}/alphanumeric_sender_ids``."""

    id: str = field(validator=v.path_id)


@frozen(repr=False, eq=False)
class CreateAlphanumericSenderId(Request):
    """``POST /alphanumeric_sender_ids`` (§5)."""

    alphanumeric_sender_id: str = field(kw_only=True, validator=v.alphanumeric_sender)
    messaging_profile_id: str = field(kw_only=True, validator=v.non_empty)
    us_long_code_fallback: str | None = field(default=None, kw_only=True, validator=v.e164)


@frozen(repr=False, eq=False)
class ListHostedNumbers(_Paged):
    """``GET /messaging_hosted_numbers`` (§6)."""

    filter: HostedNumberFilter | None = field(default=None, kw_only=True, validator=v.query_object)
    sort: HostedNumberSort | None = field(default=None, kw_only=True, validator=_SORT)


@frozen(repr=False, eq=False)
class UpdateHostedNumber(Request):
    """``PATCH /messaging_hosted_numbers/{id}``; ``messaging_profile_id=""`` unassigns it."""

    id: str = field(validator=v.path_id)
    messaging_product: str | None = field(default=None, kw_only=True, validator=v.string)
    messaging_profile_id: str | None = field(default=None, kw_only=True, validator=v.string)
    tags: Sequence[str] | None = field(default=None, kw_only=True, validator=v.str_list())


@frozen(repr=False, eq=False)
class ListOptOuts(_PageConsolidated):
    """``GET /messaging_optouts`` (§7); ``redaction_enabled`` hides recipient numbers."""

    filter: OptOutFilter | None = field(default=None, kw_only=True, validator=v.query_object)
    created_at: DateRange | None = field(
        default=None, kw_only=True, validator=v.bounds(date_times=True)
    )
    redaction_enabled: bool | None = field(default=None, kw_only=True, validator=v.boolean)


@frozen(repr=False, eq=False)
class ListProfileMetrics(Request):
    """``GET /messaging_profile_metrics``: one summary per profile over ``time_frame``.

    The OpenAPI definition documents ``time_frame`` as this operation's only parameter (no
    paging, no profile filter), so nothing else is accepted.
    """

    time_frame: TimeFrame | MetricsTimeFrame | None = field(
        default=None, kw_only=True, validator=_TIME_FRAME
    )


@frozen(repr=False, eq=False)
class RetrieveProfileMetrics(Request):
    """``GET /messaging_profiles/{id}/metrics`` (§8.2)."""

    id: str = field(validator=v.path_id)
    time_frame: TimeFrame | MetricsTimeFrame | None = field(
        default=None, kw_only=True, validator=_TIME_FRAME
    )


# --- auto-response configs (docs/wire.md §9.4) ----------------------------------------------------


@frozen(repr=False, eq=False)
class ListAutorespConfigs(Request):
    """``GET /messaging_profiles/{profile_id}/autoresp_configs``."""

    profile_id: str = field(validator=v.path_id)
    country_code: str | None = field(default=None, kw_only=True, validator=v.non_empty)
    created_at: DateRange | None = field(default=None, kw_only=True, validator=_TEXT_RANGE)
    updated_at: DateRange | None = field(default=None, kw_only=True, validator=_TEXT_RANGE)


@frozen(repr=False, eq=False)
class _AutorespBody(Request):
    op: Op | AutorespOp = field(kw_only=True, validator=_OP)
    keywords: Sequence[str] = field(kw_only=True, validator=v.str_list(1))
    country_code: str = field(kw_only=True, validator=v.non_empty)
    resp_text: str | None = field(default=None, kw_only=True, validator=v.string)


@frozen(repr=False, eq=False)
class CreateAutorespConfig(_AutorespBody):
    """``POST /messaging_profiles/{profile_id}/autoresp_configs``."""

    profile_id: str = field(validator=v.path_id)


@frozen(repr=False, eq=False)
class AutorespConfigRef(Request):
    """An auto-response config addressed by its id and its profile's id."""

    autoresp_cfg_id: str = field(validator=v.path_id)
    profile_id: str = field(kw_only=True, validator=v.path_id)


@frozen(repr=False, eq=False)
class UpdateAutorespConfig(_AutorespBody):
    """``PUT …/autoresp_configs/{autoresp_cfg_id}``: a full replacement, same body as create."""

    autoresp_cfg_id: str = field(validator=v.path_id)
    profile_id: str = field(kw_only=True, validator=v.path_id)


# --- messaging profiles, numbers, short codes, bulk updates ----------------------------------
# Fields as the OpenAPI definition shows them (team-telnyx/openapi, openapi/spec3.yml at
# 12de4dd039fd867f7a81c8ec415e6fb6477d5687): CreateMessagingProfileRequest,
# UpdateMessagingProfileRequest, UpdatePhoneNumberMessagingSettingsRequest,
# UpdateShortCodeRequest, BulkMessagingSettingsUpdatePhoneNumbersRequest.

# The definition gives whitelisted_destinations items the pattern ^[A-Z]{2}$, but the
# property's description says ["*"] allows every destination; we accept both.
_DESTINATIONS = v.str_list(item=v.pattern(r"[A-Z]{2}|\*", "an ISO 3166-1 alpha-2 code or '*'"))
_ALPHA_SENDER = v.pattern(r"[A-Za-z0-9 ]{1,11}", "1-11 letters, digits or spaces")
_SPEND_LIMIT = v.pattern(r"[0-9]+(?:\.[0-9]+)?", "a decimal amount such as '269.00'")
_POOL = v.settings_object(
    ("long_code_weight", "toll_free_weight", "skip_unhealthy"),
    long_code_weight="weight",
    toll_free_weight="weight",
    skip_unhealthy="boolean",
    sticky_sender="boolean",
    geomatch="boolean",
)
_SHORTENER = v.settings_object(
    ("domain",),
    domain="string",
    prefix="string",
    replace_blacklist_only="boolean",
    send_webhooks="boolean",
)


@frozen(repr=False, eq=False)
class ListMessagingProfiles(_PageConsolidated):
    """``GET /messaging_profiles``: ``filter={"name": "Acme"}`` or ``{"name": {"contains": …}}``."""

    filter: MessagingProfileFilter | None = field(
        default=None, kw_only=True, validator=_PROFILE_FILTER
    )


@frozen(repr=False, eq=False)
class _ProfileSettings(Request):
    enabled: bool | None = field(default=None, kw_only=True, validator=v.boolean)
    # The definition's webhook URLs are format "url" yet default to "" (and a profile
    # created without them answers ""), so "" is accepted besides an http(s) URL. They and
    # alpha_sender are declared by the create and update requests (an update sends null).
    webhook_api_version: WebhookApiVersion | None = field(
        default=None, kw_only=True, validator=_API_VERSION
    )
    # The definition: "To disable this feature, set the object field to null", so None is sent.
    number_pool_settings: NumberPoolSettingsParam | NotGiven | None = field(
        default=NOT_GIVEN, kw_only=True, validator=v.nullable(_POOL)
    )
    url_shortener_settings: UrlShortenerSettingsParam | NotGiven | None = field(
        default=NOT_GIVEN, kw_only=True, validator=v.nullable(_SHORTENER)
    )
    daily_spend_limit: str | None = field(default=None, kw_only=True, validator=_SPEND_LIMIT)
    daily_spend_limit_enabled: bool | None = field(default=None, kw_only=True, validator=v.boolean)
    mms_fall_back_to_sms: bool | None = field(default=None, kw_only=True, validator=v.boolean)
    mms_transcoding: bool | None = field(default=None, kw_only=True, validator=v.boolean)
    mobile_only: bool | None = field(default=None, kw_only=True, validator=v.boolean)
    smart_encoding: bool | None = field(default=None, kw_only=True, validator=v.boolean)


@frozen(repr=False, eq=False)
class CreateMessagingProfile(_ProfileSettings):
    """``POST /messaging_profiles``: ``whitelisted_destinations=["*"]`` allows every country."""

    name: str = field(kw_only=True, validator=v.string)
    whitelisted_destinations: Sequence[str] = field(kw_only=True, validator=_DESTINATIONS)
    webhook_url: str | None = field(default=None, kw_only=True, validator=v.url_or_empty)
    webhook_failover_url: str | None = field(default=None, kw_only=True, validator=v.url_or_empty)
    alpha_sender: str | None = field(default=None, kw_only=True, validator=_ALPHA_SENDER)
    ai_assistant_id: str | None = field(default=None, kw_only=True, validator=_MAX_64)
    resource_group_id: str | None = field(default=None, kw_only=True, validator=_MAX_64)
    health_webhook_url: str | None = field(default=None, kw_only=True, validator=v.url_or_empty)


@frozen(repr=False, eq=False)
class UpdateMessagingProfile(_ProfileSettings):
    """``PATCH /messaging_profiles/{id}``: only the fields given change; ``None`` for
    ``alpha_sender``, ``ai_assistant_id``, ``webhook_url`` or ``webhook_failover_url`` removes
    that setting (sent as ``null``).

    The definition's body also lists ``id``, ``record_type``, ``created_at`` and ``updated_at``,
    all read-only, so they are not arguments. Its ``default: false`` on four booleans describes
    a new profile; an omitted field keeps its value.
    """

    id: str = field(validator=v.path_id)
    name: str | None = field(default=None, kw_only=True, validator=v.string)
    whitelisted_destinations: Sequence[str] | None = field(
        default=None, kw_only=True, validator=_DESTINATIONS
    )
    # The definition types these four as string or null: null removes the setting (the only
    # way for alpha_sender, whose pattern excludes ""), so None is sent as null here.
    ai_assistant_id: str | NotGiven | None = field(
        default=NOT_GIVEN, kw_only=True, validator=v.nullable(v.string)
    )
    alpha_sender: str | NotGiven | None = field(
        default=NOT_GIVEN, kw_only=True, validator=v.nullable(_ALPHA_SENDER)
    )
    webhook_url: str | NotGiven | None = field(
        default=NOT_GIVEN, kw_only=True, validator=v.nullable(v.url_or_empty)
    )
    webhook_failover_url: str | NotGiven | None = field(
        default=NOT_GIVEN, kw_only=True, validator=v.nullable(v.url_or_empty)
    )
    v1_secret: str | None = field(default=None, kw_only=True, validator=v.string, repr=False)


@frozen(repr=False, eq=False)
class ListProfilePhoneNumbers(_PageConsolidated):
    """``GET /messaging_profiles/{id}/phone_numbers``: the profile's numbers."""

    id: str = field(validator=v.path_id)


@frozen(repr=False, eq=False)
class ListProfileShortCodes(_PageConsolidated):
    """``GET /messaging_profiles/{id}/short_codes``: the profile's short codes."""

    id: str = field(validator=v.path_id)


@frozen(repr=False, eq=False)
class ListPhoneNumbersMessaging(_PageConsolidated):
    """``GET /phone_numbers/messaging``: numbers with their messaging settings.

    ``filter`` keys: ``messaging_profile_id``, ``phone_number`` (exact; a comma-separated list
    is allowed) or ``{"contains": …}``, ``type`` (``tollfree``, ``longcode``, ``shortcode``);
    ``sort={"phone_number": "asc" | "desc"}``.
    """

    filter: PhoneNumberFilter | None = field(default=None, kw_only=True, validator=_PHONE_FILTER)
    sort: HostedNumberSort | None = field(default=None, kw_only=True, validator=_SORT)


@frozen(repr=False, eq=False)
class UpdatePhoneNumberMessaging(Request):
    """``PATCH /phone_numbers/{id}/messaging``; ``messaging_profile_id=""`` unassigns.

    ``id`` is any non-empty string (an E.164 number works; it is percent-encoded in the path).
    The definition says ``null`` keeps a value like omitting it does; leave an argument out
    to keep it.
    """

    id: str = field(validator=v.path_id)
    messaging_product: str | None = field(default=None, kw_only=True, validator=v.string)
    messaging_profile_id: str | None = field(default=None, kw_only=True, validator=v.string)
    tags: Sequence[str] | None = field(default=None, kw_only=True, validator=v.str_list())


@frozen(repr=False, eq=False)
class ListShortCodes(_PageConsolidated):
    """``GET /short_codes``: ``filter={"messaging_profile_id": "null"}`` lists unassigned ones."""

    filter: ShortCodeFilter | None = field(default=None, kw_only=True, validator=v.query_object)


@frozen(repr=False, eq=False)
class UpdateShortCode(Request):
    """``PATCH /short_codes/{id}``: bind it to a profile; ``messaging_profile_id=""`` unbinds.

    The definition's operation text says ``null`` or ``""`` unbinds while its body schema
    requires a non-null string, so the key is always sent and ``""`` is how to unbind.
    """

    id: str = field(validator=v.path_id)
    messaging_profile_id: str = field(kw_only=True, validator=v.string)
    tags: Sequence[str] | None = field(default=None, kw_only=True, validator=v.str_list())


@frozen(repr=False, eq=False)
class CreateBulkUpdate(Request):
    """``POST /messaging_numbers_bulk_updates``: set (or with ``""`` clear) many numbers' profile.

    ``assign_only=True`` assigns the profile without changing the numbers' other settings.
    Poll ``retrieve(order_id)`` until ``pending`` is empty.
    """

    messaging_profile_id: str = field(kw_only=True, validator=v.string)
    numbers: Sequence[str] = field(kw_only=True, validator=v.str_list(item=v.e164))
    assign_only: bool | None = field(default=None, kw_only=True, validator=v.boolean)


@frozen(repr=False, eq=False)
class ByOrderId(Request):
    """An operation addressed by ``{order_id}`` only."""

    order_id: str = field(validator=v.path_id)
