"""In-memory account resources of the fake: profiles, hosted numbers, alphanumeric sender ids,
opt-outs, auto-response configs and metrics. Pure: no I/O, no asyncio; time is injected.

Records are stored as the JSON objects the API returns (docs/wire.md §5-§9), so rendering is a
``json.dumps`` away. Message sending lives in ``_messages.py``.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from telnyx_msg.testing._config import FakeConfig, SeedNumber, SeedProfile
from telnyx_msg.testing._errors import bad_parameter, invalid, not_found
from telnyx_msg.testing._paging import datetime_param, in_range, paged
from telnyx_msg.testing._sms import (
    ALPHANUMERIC,
    KIND_LABEL,
    is_e164,
    iso,
    parse_datetime,
    sender_kind,
)

JSON = dict[str, Any]

# Hours covered by each ``time_frame`` value (docs/wire.md §8.1).
TIME_FRAMES = {"1h": 1, "3h": 3, "24h": 24, "3d": 72, "7d": 168, "30d": 720}
# Telnyx's default keywords (developers.telnyx.com/docs/messaging/messages/advanced-opt-in-out).
STOP_WORDS = frozenset({"STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})
_AUTORESP_OPS = ("start", "stop", "info")
# Indexes of the metric counters.
SENT, DELIVERED, FAILED, RECEIVED = range(4)
# Profile fields as the definition's CreateMessagingProfileRequest and
# UpdateMessagingProfileRequest type them: JSON types accepted, and whether null is allowed.
_PROFILE_FIELDS: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "name": (str, False),
    "enabled": (bool, False),
    "webhook_url": (str, True),
    "webhook_failover_url": (str, True),
    "webhook_api_version": (str, False),
    "whitelisted_destinations": (list, False),
    "number_pool_settings": (dict, True),
    "url_shortener_settings": (dict, True),
    "alpha_sender": (str, True),
    "daily_spend_limit": (str, False),
    "daily_spend_limit_enabled": (bool, False),
    "mms_fall_back_to_sms": (bool, False),
    "mms_transcoding": (bool, False),
    "mobile_only": (bool, False),
    "smart_encoding": (bool, False),
    "ai_assistant_id": (str, True),
}
# JSON types of the members of NumberPoolSettings and UrlShortenerSettings.
_SETTINGS_MEMBERS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "number_pool_settings": {
        "long_code_weight": (int, float),
        "toll_free_weight": (int, float),
        "skip_unhealthy": bool,
        "sticky_sender": bool,
        "geomatch": bool,
    },
    "url_shortener_settings": {
        "domain": str,
        "prefix": str,
        "replace_blacklist_only": bool,
        "send_webhooks": bool,
    },
}
_CREATE_ONLY = {"resource_group_id": (str, True), "health_webhook_url": (str, True)}
_UPDATE_ONLY = {"v1_secret": (str, False)}
_DESTINATION = re.compile(r"[A-Z]{2}|\*")  # "*" = every destination (the description's reading)
_ALPHA_SENDER = re.compile(r"[A-Za-z0-9 ]{1,11}")
_SPEND_LIMIT = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_API_VERSIONS = ("1", "2", "2010-04-01")
# filter[type] of GET /phone_numbers/messaging -> the spellings a number's type may have.
_TYPE_FILTER = {
    "longcode": ("long-code", "longcode"),
    "tollfree": ("toll-free", "tollfree"),
    "shortcode": ("short-code", "shortcode"),
}


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


class Account:
    """Every non-message resource of one fake Telnyx account."""

    def __init__(self, config: FakeConfig, *, wall: Callable[[], datetime]) -> None:
        self.config = config
        self.wall = wall
        created = iso(wall())
        self.profiles: dict[str, JSON] = {}
        for seed in config.profiles:
            self.profiles[seed.id] = self._profile_record(seed, created)
        self.numbers: dict[str, JSON] = {}
        self.numbers_by_phone: dict[str, JSON] = {}
        for number in config.numbers:
            record = self._number_record(number, created)
            self.numbers[number.id] = record
            self.numbers_by_phone[number.phone_number] = record
        self.alphanumeric: dict[str, JSON] = {}
        self.opt_outs: dict[tuple[str, str], JSON] = {}
        self.autoresp: dict[str, dict[str, JSON]] = {pid: {} for pid in self.profiles}
        # (profile id, hour start as epoch seconds, label) -> [sent, delivered, failed, received]
        self._buckets: dict[tuple[str, int, str], list[int]] = {}
        # phone number -> [sent, delivered, failed, received], for hosted-number health
        self._number_counts: dict[str, list[int]] = {}
        self._pool_cursor: dict[str, int] = {}
        # order id -> (order JSON, assign_only, profile id to set)
        self.bulk_orders: dict[str, tuple[JSON, bool, str]] = {}

    # -- messaging profiles ------------------------------------------------------------------

    def _profile_record(self, seed: SeedProfile, created: str) -> JSON:
        # Fields per docs/wire.md §9.1 (MessagingMessagingProfile).
        return {
            "record_type": "messaging_profile",
            "id": seed.id,
            "name": seed.name,
            "enabled": True,
            "v1_secret": seed.v1_secret or secrets.token_urlsafe(18),
            "webhook_url": seed.webhook_url,
            "webhook_failover_url": seed.webhook_failover_url,
            "webhook_api_version": "2",
            "whitelisted_destinations": ["US"],
            "number_pool_settings": None,
            "url_shortener_settings": None,
            "alpha_sender": None,
            "daily_spend_limit": "0.00",
            "daily_spend_limit_enabled": False,
            "mms_fall_back_to_sms": False,
            "mms_transcoding": False,
            "mobile_only": False,
            "smart_encoding": False,
            "redaction_enabled": False,
            "redaction_level": 0,
            "ai_assistant_id": None,
            "resource_group_id": None,
            "health_webhook_url": None,
            "organization_id": self.config.organization_id,
            "created_at": created,
            "updated_at": created,
        }

    @property
    def default_profile_id(self) -> str | None:
        """The first seeded profile: owner of messages from senders not on the account."""
        return next(iter(self.profiles), None)

    def profile(self, profile_id: str) -> JSON:
        """The profile record, or a 404."""
        try:
            return self.profiles[profile_id]
        except KeyError:
            raise not_found("Messaging profile") from None

    def regenerate_secret(self, profile_id: str) -> JSON:
        """Give the profile a new ``v1_secret``."""
        record = self.profile(profile_id)
        record["v1_secret"] = secrets.token_urlsafe(18)
        record["updated_at"] = iso(self.wall())
        return record

    def webhook_targets(self, profile_id: str | None) -> tuple[str | None, str | None]:
        """The profile's ``(webhook_url, webhook_failover_url)`` (``""`` means none)."""
        record = self.profiles.get(profile_id) if profile_id else None
        if record is None:
            return None, None
        return record["webhook_url"] or None, record["webhook_failover_url"] or None

    @staticmethod
    def _profile_fields(
        body: JSON, allowed: Mapping[str, tuple[type | tuple[type, ...], bool]]
    ) -> JSON:
        """Check the known fields of a profile body; unknown and read-only keys are ignored."""
        fields: JSON = {}
        for key, (kind, nullable) in allowed.items():
            if key not in body:
                continue
            value = body[key]
            if value is None:
                if not nullable:
                    raise invalid(f"'{key}' must not be null.", f"/{key}")
            elif not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
                raise invalid(f"'{key}' has the wrong type.", f"/{key}")
            fields[key] = value
        destinations = fields.get("whitelisted_destinations")
        if destinations is not None and not all(
            isinstance(d, str) and _DESTINATION.fullmatch(d) for d in destinations
        ):
            raise invalid(
                "'whitelisted_destinations' takes ISO 3166-1 alpha-2 codes or '*'.",
                "/whitelisted_destinations",
            )
        checks = (("alpha_sender", _ALPHA_SENDER), ("daily_spend_limit", _SPEND_LIMIT))
        for key, pattern in checks:
            value = fields.get(key)
            if value is not None and not pattern.fullmatch(value):
                raise invalid(f"'{key}' does not match {pattern.pattern}.", f"/{key}")
        if fields.get("webhook_api_version", "2") not in _API_VERSIONS:
            raise invalid(
                "'webhook_api_version' must be 1, 2 or 2010-04-01.", "/webhook_api_version"
            )
        for key in ("webhook_url", "webhook_failover_url", "health_webhook_url"):
            url = fields.get(key)
            if url and not url.startswith(("http://", "https://")):
                raise invalid(f"'{key}' must be an http(s) URL or \"\".", f"/{key}")
        pool = fields.get("number_pool_settings")
        if pool is not None and any(
            pool.get(k) is None for k in ("long_code_weight", "toll_free_weight", "skip_unhealthy")
        ):
            raise invalid(
                "'number_pool_settings' needs long_code_weight, toll_free_weight and "
                "skip_unhealthy.",
                "/number_pool_settings",
            )
        shortener = fields.get("url_shortener_settings")
        if shortener is not None and not isinstance(shortener.get("domain"), str):
            raise invalid("'url_shortener_settings' needs a domain.", "/url_shortener_settings")
        for key, kinds in _SETTINGS_MEMBERS.items():
            settings = fields.get(key) or {}
            for member, kind in kinds.items():
                item = settings.get(member)
                if item is not None and not (
                    isinstance(item, kind) and (kind is bool or not isinstance(item, bool))
                ):
                    raise invalid(f"'{key}.{member}' has the wrong type.", f"/{key}/{member}")
        return fields

    def create_profile(self, body: JSON) -> JSON:
        """``POST /messaging_profiles``: ``name`` and ``whitelisted_destinations`` required."""
        for key in ("name", "whitelisted_destinations"):
            if body.get(key) is None:
                raise invalid(f"The '{key}' parameter is required.", f"/{key}")
        fields = self._profile_fields(body, {**_PROFILE_FIELDS, **_CREATE_ONLY})
        created = iso(self.wall())
        record = self._profile_record(
            SeedProfile(id=str(uuid.uuid4()), name=fields["name"]), created
        )
        # A profile created without webhook URLs answers "" for them (the definition's default).
        record["webhook_url"] = record["webhook_failover_url"] = ""
        record.update(fields)
        self.profiles[record["id"]] = record
        self.autoresp[record["id"]] = {}
        return record

    def update_profile(self, profile_id: str, body: JSON) -> JSON:
        """``PATCH /messaging_profiles/{id}``: only the keys present change."""
        record = self.profile(profile_id)
        fields = self._profile_fields(body, {**_PROFILE_FIELDS, **_UPDATE_ONLY})
        record.update(fields)
        record["updated_at"] = iso(self.wall())
        return record

    def delete_profile(self, profile_id: str) -> JSON:
        """``DELETE /messaging_profiles/{id}``: its numbers and short codes become unassigned
        and its alphanumeric sender ids and auto-response configs go with it."""
        record = self.profile(profile_id)
        del self.profiles[profile_id]
        self.autoresp.pop(profile_id, None)
        for number in self.numbers.values():
            if number["messaging_profile_id"] == profile_id:
                number["messaging_profile_id"] = None
        for sender_id in [
            k for k, r in self.alphanumeric.items() if r["messaging_profile_id"] == profile_id
        ]:
            del self.alphanumeric[sender_id]
        return record

    def list_profiles(self, query: Mapping[str, str]) -> JSON:
        """``GET /messaging_profiles`` with ``filter[name]``, ``[eq]`` or ``[contains]``."""
        exact = query.get("filter[name]", query.get("filter[name][eq]"))
        contains = query.get("filter[name][contains]")
        items = [
            r
            for r in self.profiles.values()
            if (exact is None or r["name"] == exact) and (contains is None or contains in r["name"])
        ]
        return paged(items, query)

    # -- hosted numbers ----------------------------------------------------------------------

    def _number_record(self, seed: SeedNumber, created: str) -> JSON:
        # Fields per docs/wire.md §6 (PhoneNumberWithMessagingSettings); "health" is added on
        # render.
        mms = (
            None
            if seed.type == "short-code"
            else {
                "domestic_two_way": True,
                "international_inbound": False,
                "international_outbound": False,
            }
        )
        return {
            "record_type": "messaging_phone_number",
            "id": seed.id,
            "phone_number": seed.phone_number,
            "country_code": seed.country_code,
            "type": seed.type,
            "messaging_profile_id": seed.messaging_profile_id,
            "messaging_product": "A2P",
            "eligible_messaging_products": ["A2P"],
            "traffic_type": "A2P",
            "organization_id": self.config.organization_id,
            "tags": list(seed.tags),
            "features": {
                "sms": {
                    "domestic_two_way": True,
                    "international_inbound": True,
                    "international_outbound": True,
                },
                "mms": mms,
            },
            "created_at": created,
            "updated_at": created,
        }

    def render_number(self, record: JSON) -> JSON:
        """The API view of a hosted number, with ``health`` from the traffic it carried."""
        sent, delivered, failed, received = self._number_counts.get(
            record["phone_number"], (0, 0, 0, 0)
        )
        health = {
            "message_count": sent + received,
            "inbound_outbound_ratio": _ratio(received, sent),
            "success_ratio": _ratio(delivered, delivered + failed) if delivered + failed else 1.0,
            "spam_ratio": 0.0,
        }
        return {**record, "health": health}

    def number(self, key: str) -> JSON:
        """A hosted number by id or phone number, or a 404."""
        record = self.numbers.get(key) or self.numbers_by_phone.get(key)
        if record is None:
            raise not_found("Messaging hosted number")
        return record

    def list_numbers(self, query: Mapping[str, str], *, paginate: bool = True) -> Any:
        """``GET /messaging_hosted_numbers`` with its filters and ``sort[phone_number]``
        (``paginate=False``: the rendered numbers, unpaged)."""
        profile = query.get("filter[messaging_profile_id]")
        exact = query.get("filter[phone_number]")
        contains = query.get("filter[phone_number][contains]")
        items = [
            r
            for r in self.numbers.values()
            if (profile is None or r["messaging_profile_id"] == profile)
            and (exact is None or r["phone_number"] == exact)
            and (contains is None or contains in r["phone_number"])
        ]
        sort = query.get("sort[phone_number]")
        if sort is not None:
            if sort not in ("asc", "desc"):
                raise bad_parameter(
                    "'sort[phone_number]' must be 'asc' or 'desc'.", "sort[phone_number]"
                )
            items.sort(key=lambda r: r["phone_number"], reverse=sort == "desc")
        rendered = [self.render_number(r) for r in items]
        return paged(rendered, query, capped=False) if paginate else rendered

    def update_number(self, key: str, body: JSON) -> JSON:
        """``PATCH``: absent or null keeps a field; ``messaging_profile_id: ""`` unassigns."""
        record = self.number(key)
        product = body.get("messaging_product")
        if product is not None and not isinstance(product, str):
            raise invalid("'messaging_product' must be a string.", "/messaging_product")
        profile_id = body.get("messaging_profile_id")
        if profile_id is not None:
            if not isinstance(profile_id, str):
                raise invalid("'messaging_profile_id' must be a string.", "/messaging_profile_id")
            if profile_id and profile_id not in self.profiles:
                raise invalid("Messaging profile not found.", "/messaging_profile_id")
        tags = body.get("tags")
        if tags is not None and not (
            isinstance(tags, list) and all(isinstance(t, str) for t in tags)
        ):
            raise invalid("'tags' must be a list of strings.", "/tags")
        if product is not None:
            record["messaging_product"] = product
        if profile_id is not None:
            record["messaging_profile_id"] = profile_id or None
        if tags is not None:
            record["tags"] = list(tags)
        record["updated_at"] = iso(self.wall())
        return self.render_number(record)

    def list_phone_numbers(self, query: Mapping[str, str]) -> JSON:
        """``GET /phone_numbers/messaging``: like the hosted-number list, plus ``filter[type]``;
        ``filter[phone_number]`` may list several numbers separated by commas."""
        wanted_type = query.get("filter[type]")
        if wanted_type is not None and wanted_type not in _TYPE_FILTER:
            raise bad_parameter(
                "'filter[type]' must be tollfree, longcode or shortcode.", "filter[type]"
            )
        exact = query.get("filter[phone_number]")
        numbers = None if exact is None else set(exact.split(","))
        rest = {k: v for k, v in query.items() if k != "filter[phone_number]"}
        listed = self.list_numbers(rest, paginate=False)
        items = [
            r
            for r in listed
            if (wanted_type is None or r["type"] in _TYPE_FILTER[wanted_type])
            and (numbers is None or r["phone_number"] in numbers)
        ]
        return paged(items, query)

    def list_profile_numbers(self, profile_id: str, query: Mapping[str, str]) -> JSON:
        """``GET /messaging_profiles/{id}/phone_numbers``: its numbers other than short codes
        (those are listed by ``/messaging_profiles/{id}/short_codes``)."""
        self.profile(profile_id)
        items = [
            self.render_number(r)
            for r in self.numbers.values()
            if r["messaging_profile_id"] == profile_id and r["type"] != "short-code"
        ]
        return paged(items, query)

    def delete_number(self, key: str) -> JSON:
        """``DELETE /messaging_hosted_numbers/{id}``: remove it; answer a ``deleted`` order."""
        record = self.number(key)
        del self.numbers[record["id"]]
        del self.numbers_by_phone[record["phone_number"]]
        return {
            "record_type": "messaging_hosted_number_order",
            "id": str(uuid.uuid4()),
            "messaging_profile_id": record["messaging_profile_id"],
            "status": "deleted",
            "phone_numbers": [
                {
                    "record_type": "messaging_hosted_number",
                    "id": record["id"],
                    "phone_number": record["phone_number"],
                    "status": "deleted",
                }
            ],
        }

    # -- short codes (the account's numbers of type short-code, seen as ShortCode) ---------

    @staticmethod
    def render_short_code(record: JSON) -> JSON:
        """The ``ShortCode`` view of a short-code number."""
        return {
            "record_type": "short_code",
            "id": record["id"],
            "short_code": record["phone_number"],
            "country_code": record["country_code"],
            "messaging_profile_id": record["messaging_profile_id"],
            "tags": list(record["tags"]),
            "created_at": record["created_at"],
            "updated_at": record["updated_at"],
        }

    def short_code(self, short_code_id: str) -> JSON:
        """A short code by id, or a 404."""
        record = self.numbers.get(short_code_id)
        if record is None or record["type"] != "short-code":
            raise not_found("Short code")
        return record

    def list_short_codes(self, query: Mapping[str, str], profile_id: str | None = None) -> JSON:
        """``GET /short_codes`` (``filter[messaging_profile_id]``, ``"null"`` = unassigned) or
        ``GET /messaging_profiles/{id}/short_codes``."""
        if profile_id is not None:
            self.profile(profile_id)
        wanted = profile_id or query.get("filter[messaging_profile_id]")
        items = [
            self.render_short_code(r)
            for r in self.numbers.values()
            if r["type"] == "short-code"
            and (
                wanted is None
                or (wanted == "null" and r["messaging_profile_id"] is None)
                or r["messaging_profile_id"] == wanted
            )
        ]
        return paged(items, query)

    def update_short_code(self, short_code_id: str, body: JSON) -> JSON:
        """``PATCH /short_codes/{id}``: ``messaging_profile_id`` is required; null or ``""``
        unbinds (the operation's description)."""
        record = self.short_code(short_code_id)
        if "messaging_profile_id" not in body:
            raise invalid(
                "The 'messaging_profile_id' parameter is required.", "/messaging_profile_id"
            )
        self.update_number(
            record["id"],
            {"messaging_profile_id": body["messaging_profile_id"] or "", "tags": body.get("tags")},
        )
        return self.render_short_code(record)

    # -- bulk updates ------------------------------------------------------------------------

    def create_bulk_update(self, body: JSON) -> JSON:
        """``POST /messaging_numbers_bulk_updates``: every number starts ``pending``."""
        profile_id = body.get("messaging_profile_id")
        if not isinstance(profile_id, str):
            raise invalid(
                "The 'messaging_profile_id' parameter is required (\"\" unassigns).",
                "/messaging_profile_id",
            )
        if profile_id:
            self._known_profile(profile_id)
        numbers = body.get("numbers")
        if not (isinstance(numbers, list) and all(is_e164(n) for n in numbers)):
            raise invalid("'numbers' must be a list of +E.164 phone numbers.", "/numbers")
        assign_only = body.get("assign_only", False)
        if not isinstance(assign_only, bool):
            raise invalid("'assign_only' must be a boolean.", "/assign_only")
        order: JSON = {
            "record_type": "messaging_numbers_bulk_update",
            "order_id": str(uuid.uuid4()),
            "success": [],
            "pending": list(dict.fromkeys(numbers)),
            "failed": [],
        }
        self.bulk_orders[order["order_id"]] = (order, assign_only, profile_id)
        return order

    def process_bulk_update(self, order_id: str) -> None:
        """Apply a pending order: numbers on the account succeed, the others fail."""
        entry = self.bulk_orders.get(order_id)
        if entry is None:
            return
        order, _assign_only, profile_id = entry
        if profile_id and profile_id not in self.profiles:  # deleted since the order
            order["failed"] += order["pending"]
            order["pending"] = []
        for number in order["pending"]:
            if number in self.numbers_by_phone:
                self.update_number(number, {"messaging_profile_id": profile_id})
                order["success"].append(number)
            else:
                order["failed"].append(number)
        order["pending"] = []

    def bulk_update(self, order_id: str) -> JSON:
        """``GET /messaging_numbers_bulk_updates/{order_id}``: reading it completes it."""
        if order_id not in self.bulk_orders:
            raise not_found("Bulk update order")
        self.process_bulk_update(order_id)
        return self.bulk_orders[order_id][0]

    def _known_profile(self, profile_id: str) -> None:
        if profile_id not in self.profiles:
            raise invalid("Messaging profile not found.", "/messaging_profile_id")

    def pool_number(self, profile_id: str) -> JSON:
        """Round-robin over the profile's long-code and toll-free numbers (number pool)."""
        candidates = [
            r
            for r in self.numbers.values()
            if r["messaging_profile_id"] == profile_id and r["type"] in ("long-code", "toll-free")
        ]
        if not candidates:
            raise invalid(
                "The messaging profile has no numbers for the number pool.", "/messaging_profile_id"
            )
        cursor = self._pool_cursor.get(profile_id, 0)
        self._pool_cursor[profile_id] = cursor + 1
        return candidates[cursor % len(candidates)]

    # -- alphanumeric sender ids -------------------------------------------------------------

    def create_alphanumeric(self, body: JSON) -> JSON:
        """``POST /alphanumeric_sender_ids``."""
        sender = body.get("alphanumeric_sender_id")
        if not isinstance(sender, str) or not ALPHANUMERIC.fullmatch(sender):
            raise invalid(
                "'alphanumeric_sender_id' must be 1-11 letters, digits or spaces, "
                "with at least one letter.",
                "/alphanumeric_sender_id",
            )
        profile_id = body.get("messaging_profile_id")
        if not isinstance(profile_id, str) or profile_id not in self.profiles:
            raise invalid("Messaging profile not found.", "/messaging_profile_id")
        fallback = body.get("us_long_code_fallback")
        if fallback is not None and not isinstance(fallback, str):
            raise invalid("'us_long_code_fallback' must be a string.", "/us_long_code_fallback")
        record_id = str(uuid.uuid4())
        record = {
            "record_type": "alphanumeric_sender_id",
            "id": record_id,
            "alphanumeric_sender_id": sender,
            "messaging_profile_id": profile_id,
            "organization_id": self.config.organization_id,
        }
        # The definition types us_long_code_fallback as a non-null string: omit it when unset.
        if fallback is not None:
            record["us_long_code_fallback"] = fallback
        self.alphanumeric[record_id] = record
        return record

    def alphanumeric_record(self, sender_id: str) -> JSON:
        """One alphanumeric sender id record, or a 404."""
        try:
            return self.alphanumeric[sender_id]
        except KeyError:
            raise not_found("Alphanumeric sender ID") from None

    def delete_alphanumeric(self, sender_id: str) -> JSON:
        """Remove and return the record."""
        record = self.alphanumeric_record(sender_id)
        del self.alphanumeric[sender_id]
        return record

    def list_alphanumeric(self, query: Mapping[str, str], profile_id: str | None = None) -> JSON:
        """List, filtered by ``filter[messaging_profile_id]`` or the path's profile."""
        if profile_id is not None:
            self.profile(profile_id)
        wanted = profile_id or query.get("filter[messaging_profile_id]")
        items = [
            r
            for r in self.alphanumeric.values()
            if wanted is None or r["messaging_profile_id"] == wanted
        ]
        return paged(items, query, capped=False)

    def alphanumeric_registered(self, sender: str, profile_id: str | None) -> bool:
        """True when ``sender`` is a registered alphanumeric id (of ``profile_id`` if given)."""
        return any(
            r["alphanumeric_sender_id"] == sender
            and (profile_id is None or r["messaging_profile_id"] == profile_id)
            for r in self.alphanumeric.values()
        )

    # -- opt-outs and keywords ---------------------------------------------------------------

    def keyword_op(self, profile_id: str | None, text: str) -> str | None:
        """``"stop"``/``"start"``/``"info"`` when ``text`` is solely an opt-out, opt-in or help
        keyword."""
        word = " ".join(text.split()).upper()
        if not word:
            return None
        configs = self.autoresp.get(profile_id or "", {}).values()
        for op, builtin in (("stop", STOP_WORDS), ("start", START_WORDS), ("info", HELP_WORDS)):
            if word in builtin or any(
                c["op"] == op and word in (k.upper() for k in c["keywords"]) for c in configs
            ):
                return op
        return None

    def add_opt_out(
        self, number: str, recipient: str, keyword: str, profile_id: str | None
    ) -> None:
        """Block messages from ``number`` to ``recipient``."""
        self.opt_outs[(number, recipient)] = {
            "from": number,
            "to": recipient,
            "keyword": keyword,
            "messaging_profile_id": profile_id,
            # Telnyx writes this one with a space separator (docs/wire.md §7).
            "created_at": str(self.wall()),
        }

    def blocked(self, sender: str, recipient: str, profile_id: str | None) -> bool:
        """True when ``recipient`` opted out of ``sender`` or, as Telnyx's block rules apply
        per messaging profile, of any number of ``profile_id``."""
        if (sender, recipient) in self.opt_outs:
            return True
        return profile_id is not None and any(
            r["to"] == recipient and r["messaging_profile_id"] == profile_id
            for r in self.opt_outs.values()
        )

    def remove_opt_out(self, number: str, recipient: str, profile_id: str | None) -> None:
        """Lift a block (the recipient sent START to ``number``): like STOP, for every number
        of ``profile_id``."""
        self.opt_outs.pop((number, recipient), None)
        if profile_id is not None:
            for key, record in list(self.opt_outs.items()):
                if record["to"] == recipient and record["messaging_profile_id"] == profile_id:
                    del self.opt_outs[key]

    def list_opt_outs(self, query: Mapping[str, str]) -> JSON:
        """``GET /messaging_optouts`` with its filters and ``redaction_enabled``."""
        profile = query.get("filter[messaging_profile_id]")
        sender = query.get("filter[from]")
        low = datetime_param(query, "created_at[gte]")
        high = datetime_param(query, "created_at[lte]")
        redact = query.get("redaction_enabled", "false").lower()
        if redact not in ("true", "false"):
            raise bad_parameter(
                "'redaction_enabled' must be 'true' or 'false'.", "redaction_enabled"
            )
        items = []
        for record in self.opt_outs.values():
            created = parse_datetime(record["created_at"])
            if (
                (profile is not None and record["messaging_profile_id"] != profile)
                or (sender is not None and record["from"] != sender)
                or (created is not None and not in_range(created, low, high))
            ):
                continue
            if redact == "true":
                record = {**record, "to": record["to"][:-4] + "****"}
            items.append(record)
        return paged(items, query)

    # -- auto-response configs ---------------------------------------------------------------

    def _autoresp_configs(self, profile_id: str) -> dict[str, JSON]:
        self.profile(profile_id)
        return self.autoresp.setdefault(profile_id, {})

    @staticmethod
    def _autoresp_fields(body: JSON) -> JSON:
        op = body.get("op")
        if op not in _AUTORESP_OPS:
            raise invalid("'op' must be one of start, stop, info.", "/op")
        keywords = body.get("keywords")
        if not (
            isinstance(keywords, list)
            and keywords
            and all(isinstance(k, str) and k for k in keywords)
        ):
            raise invalid("'keywords' must be a non-empty list of strings.", "/keywords")
        country = body.get("country_code")
        # "*" (every country) is the definition's own example of a config's country_code.
        if not isinstance(country, str) or not (
            country == "*" or (len(country) == 2 and country.isalpha())
        ):
            raise invalid(
                "'country_code' must be an ISO 3166-1 alpha-2 code or '*'.", "/country_code"
            )
        fields: JSON = {"op": op, "keywords": list(keywords), "country_code": country}
        resp_text = body.get("resp_text")
        if resp_text is not None:
            if not isinstance(resp_text, str):
                raise invalid("'resp_text' must be a string.", "/resp_text")
            fields["resp_text"] = resp_text
        return fields

    def create_autoresp(self, profile_id: str, body: JSON) -> JSON:
        """``POST .../autoresp_configs``."""
        configs = self._autoresp_configs(profile_id)
        now = self.wall().isoformat()
        record_id = str(uuid.uuid4())
        record = {
            "id": record_id,
            **self._autoresp_fields(body),
            "created_at": now,
            "updated_at": now,
        }
        configs[record_id] = record
        return record

    def autoresp_record(self, profile_id: str, config_id: str) -> JSON:
        """One config, or a 404."""
        try:
            return self._autoresp_configs(profile_id)[config_id]
        except KeyError:
            raise not_found("Auto-response setting") from None

    def update_autoresp(self, profile_id: str, config_id: str, body: JSON) -> JSON:
        """``PUT``: a full replacement (an absent ``resp_text`` is removed)."""
        old = self.autoresp_record(profile_id, config_id)
        record = {
            "id": config_id,
            **self._autoresp_fields(body),
            "created_at": old["created_at"],
            "updated_at": self.wall().isoformat(),
        }
        self.autoresp[profile_id][config_id] = record
        return record

    def delete_autoresp(self, profile_id: str, config_id: str) -> None:
        """Remove one config."""
        self.autoresp_record(profile_id, config_id)
        del self.autoresp[profile_id][config_id]

    def list_autoresp(self, profile_id: str, query: Mapping[str, str]) -> JSON:
        """All configs of a profile (not paginated by the SDK, but ``meta`` is required)."""
        country = query.get("country_code")
        bounds = [
            datetime_param(query, f"{field}[{op}]")
            for field in ("created_at", "updated_at")
            for op in ("gte", "lte")
        ]
        items = []
        for record in self._autoresp_configs(profile_id).values():
            created = parse_datetime(record["created_at"])
            updated = parse_datetime(record["updated_at"])
            # Both were written by us, so they always parse.
            assert created is not None
            assert updated is not None
            if (
                (country is None or record["country_code"] == country)
                and in_range(created, bounds[0], bounds[1])
                and in_range(updated, bounds[2], bounds[3])
            ):
                items.append(record)
        return paged(items, query, default_size=max(20, len(items)))

    # -- metrics -----------------------------------------------------------------------------

    def count(self, profile_id: str | None, number: str, kind: str, field: int, n: int = 1) -> None:
        """Add ``n`` to one metric (sent, delivered, failed or received) for this hour."""
        counts = self._number_counts.setdefault(number, [0, 0, 0, 0])
        counts[field] += n
        if profile_id is None:
            return
        hour = int(self.wall().timestamp()) // 3600 * 3600
        key = (profile_id, hour, KIND_LABEL.get(kind, kind))
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [0, 0, 0, 0]
        bucket[field] += n

    def count_message(self, profile_id: str | None, sender: str, field: int, n: int = 1) -> None:
        """``count`` for a sender whose kind is looked up from the account."""
        number = self.numbers_by_phone.get(sender)
        kind = sender_kind(sender, number["type"] if number else None) or "long_code"
        self.count(profile_id, sender, kind, field, n)

    def _time_frame(self, query: Mapping[str, str]) -> int:
        frame = query.get("time_frame", "24h")
        if frame not in TIME_FRAMES:
            raise bad_parameter(
                f"'time_frame' must be one of {', '.join(TIME_FRAMES)}.", "time_frame"
            )
        now = int(self.wall().timestamp()) // 3600 * 3600
        return now - (TIME_FRAMES[frame] - 1) * 3600

    def _overview(self, profile_id: str, since: int) -> JSON:
        totals = [0, 0, 0, 0]
        for (pid, hour, _label), bucket in self._buckets.items():
            if pid == profile_id and hour >= since:
                for i in range(4):
                    totals[i] += bucket[i]
        phone_numbers = sum(
            1 for r in self.numbers.values() if r["messaging_profile_id"] == profile_id
        )
        return {
            "record_type": "messaging_profile_metrics",
            "messaging_profile_id": profile_id,
            "phone_numbers": phone_numbers,
            "outbound": {
                "sent": totals[SENT],
                "delivered": totals[DELIVERED],
                "errors": _ratio(totals[FAILED], totals[SENT]),
            },
            "inbound": {"received": totals[RECEIVED]},
        }

    def list_profile_metrics(self, query: Mapping[str, str]) -> JSON:
        """``GET /messaging_profile_metrics``: one overview per profile, all on one page.

        The definition documents ``time_frame`` as the only parameter; other query
        parameters are ignored, like any the fake does not know.
        """
        since = self._time_frame(query)
        items = [self._overview(pid, since) for pid in self.profiles]
        return paged(items, {}, default_size=max(20, len(items)))

    def profile_metrics(self, profile_id: str, query: Mapping[str, str]) -> JSON:
        """``GET /messaging_profiles/{id}/metrics``: overview plus hourly detail by label."""
        self.profile(profile_id)
        since = self._time_frame(query)
        hours: dict[int, list[JSON]] = {}
        for (pid, hour, label), bucket in sorted(self._buckets.items()):
            if pid == profile_id and hour >= since:
                hours.setdefault(hour, []).append(
                    {
                        "label": label,
                        "sent": bucket[SENT],
                        "delivered": bucket[DELIVERED],
                        "errors": _ratio(bucket[FAILED], bucket[SENT]),
                        "received": bucket[RECEIVED],
                    }
                )
        detailed = [
            {"timestamp": iso(datetime.fromtimestamp(hour, timezone.utc)), "metrics": metrics}
            for hour, metrics in sorted(hours.items())
        ]
        return {"overview": self._overview(profile_id, since), "detailed": detailed}
