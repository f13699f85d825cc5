"""The resource tree (``client.messages``, ``client.messaging_profiles.autoresp_configs`` …).

Written once for both clients. A resource is generic in its mode (:class:`AsyncMode` or
:class:`SyncMode`); each method is an :class:`Op` descriptor over an endpoint spec whose
signature is the request model's ``__init__``, so ``await client.messages.send(...)`` and
``client.messages.send(...)`` are both fully typed from one declaration. The client (the
"runner") turns a spec into the bound callable: a coroutine function for :class:`AsyncClient`,
a blocking function for :class:`Client`.
"""

from __future__ import annotations

from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Generator,
    Iterable,
)
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, overload

from telnyx_msg._items import SendItem
from telnyx_msg._outcome import SendMethod, SendOutcome
from telnyx_msg._raw import RawResponse, RawRunner
from telnyx_msg._spec import Endpoint, PagedEndpoint

if TYPE_CHECKING:
    from telnyx_msg import endpoints as ep
    from telnyx_msg._pagination import AsyncPager, SyncPager
else:

    class _Catalogue:
        """Stands in for :mod:`telnyx_msg.endpoints` at import: ``ep.send_message`` is a name.

        Building the catalogue builds every request and response model (about 75 attrs classes,
        ~25 ms, more than the rest of the package), so it is imported on a client's first call.
        """

        def __getattr__(self, name: str) -> str:
            return name

    ep = _Catalogue()

P = ParamSpec("P")
R = TypeVar("R")
M = TypeVar("M")
B = TypeVar("B")


def _snake(name: str) -> str:
    """``MessagingProfiles`` -> ``messaging_profiles`` (the resource's attribute name)."""
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))


class AsyncMode:
    """Marker: methods return awaitables and async page iterators."""


class SyncMode:
    """Marker: methods block and return values and plain page iterators."""


class Raw(Generic[B]):
    """Marker: the ``with_raw_response`` form of mode ``B``; methods return RawResponse."""


class Runner(Protocol):
    """What a client provides to its resources."""

    def _bind(self, endpoint: Endpoint[Any, Any], name: str) -> Callable[..., Any]: ...

    def _send_many(
        self,
        requests: Any,
        concurrency: int,
        method: SendMethod,
        on_stop: Callable[[SendOutcome], None] | None,
        skip_optouts: bool,
    ) -> Any: ...


class Resource(Generic[M]):
    """Base of every resource: holds the runner; bound methods are cached per instance."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    if not TYPE_CHECKING:  # each resource declares its typed ``with_raw_response``

        def __getattr__(self, name: str) -> Any:
            if name != "with_raw_response":
                raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}")
            raw = type(self)(RawRunner(self._runner))
            self.__dict__[name] = raw  # built once, on first use
            return raw


class _Method(Generic[P, R]):
    """What :class:`Op` and :class:`PagedOp` share: the spec, resolved on first use, and a name."""

    def __init__(self, endpoint: Endpoint[P, R]) -> None:
        self._endpoint: Endpoint[P, R] | str = endpoint  # a name until first use (see ``ep``)
        self.name = ""

    @property
    def endpoint(self) -> Endpoint[P, R]:
        """The endpoint spec this method calls."""
        spec = self._endpoint
        if isinstance(spec, str):
            from telnyx_msg import endpoints

            spec = self._endpoint = getattr(endpoints, spec)
        return spec

    def __set_name__(self, owner: type[Any], name: str) -> None:
        # "messages.send": how errors and help() name the method.
        self.name = f"{getattr(owner, '_path', None) or _snake(owner.__name__)}.{name}"

    def _bound(self, obj: Resource[Any]) -> Any:
        bound = obj._runner._bind(self.endpoint, self.name)
        obj.__dict__[self.name.rsplit(".", 1)[-1]] = bound  # later lookups skip the descriptor
        return bound


class Op(_Method[P, R]):
    """A method backed by one endpoint spec."""

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Op[P, R]: ...
    @overload
    def __get__(self, obj: Resource[AsyncMode], owner: type[Any]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __get__(self, obj: Resource[SyncMode], owner: type[Any]) -> Callable[P, R]: ...
    @overload
    def __get__(
        self, obj: Resource[Raw[AsyncMode]], owner: type[Any]
    ) -> Callable[P, Awaitable[RawResponse[R]]]: ...
    @overload
    def __get__(
        self, obj: Resource[Raw[SyncMode]], owner: type[Any]
    ) -> Callable[P, RawResponse[R]]: ...
    def __get__(self, obj: Resource[Any] | None, owner: type[Any]) -> Any:
        return self if obj is None else self._bound(obj)


class PagedOp(_Method[P, R]):
    """A list method backed by a paginated endpoint spec; returns a lazy page iterator."""

    def __init__(self, endpoint: PagedEndpoint[P, R]) -> None:
        super().__init__(endpoint)

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> PagedOp[P, R]: ...
    @overload
    def __get__(self, obj: Resource[AsyncMode], owner: type[Any]) -> Callable[P, AsyncPager[R]]: ...
    @overload
    def __get__(self, obj: Resource[SyncMode], owner: type[Any]) -> Callable[P, SyncPager[R]]: ...
    @overload
    def __get__(
        self, obj: Resource[Raw[AsyncMode]], owner: type[Any]
    ) -> Callable[P, Awaitable[RawResponse[AsyncPager[R]]]]: ...
    @overload
    def __get__(
        self, obj: Resource[Raw[SyncMode]], owner: type[Any]
    ) -> Callable[P, RawResponse[SyncPager[R]]]: ...
    def __get__(self, obj: Resource[Any] | None, owner: type[Any]) -> Any:
        return self if obj is None else self._bound(obj)


class Messages(Resource[M]):
    """Send, schedule, retrieve and cancel messages."""

    with_raw_response: Messages[Raw[M]]

    send = Op(ep.send_message)
    send_with_alphanumeric_sender = Op(ep.send_alphanumeric)
    send_group_mms = Op(ep.send_group_mms)
    send_long_code = Op(ep.send_long_code)
    send_number_pool = Op(ep.send_number_pool)
    send_short_code = Op(ep.send_short_code)
    schedule = Op(ep.schedule_message)
    send_whatsapp = Op(ep.send_whatsapp)
    retrieve = Op(ep.retrieve_message)
    cancel_scheduled = Op(ep.cancel_scheduled_message)
    retrieve_group_messages = Op(ep.retrieve_group_messages)

    @overload
    def send_many(
        self: Messages[AsyncMode],
        requests: Iterable[SendItem] | AsyncIterable[SendItem],
        *,
        concurrency: int = 50,
        method: SendMethod = "auto",
        on_stop: Callable[[SendOutcome], None] | None = None,
        skip_optouts: bool = False,
    ) -> AsyncGenerator[SendOutcome, None]: ...
    @overload
    def send_many(
        self: Messages[SyncMode],
        requests: Iterable[SendItem],
        *,
        concurrency: int = 50,
        method: SendMethod = "auto",
        on_stop: Callable[[SendOutcome], None] | None = None,
        skip_optouts: bool = False,
    ) -> Generator[SendOutcome, None, None]: ...
    def send_many(
        self,
        requests: Any,
        *,
        concurrency: int = 50,
        method: SendMethod = "auto",
        on_stop: Callable[[SendOutcome], None] | None = None,
        skip_optouts: bool = False,
    ) -> Any:
        """Send many messages concurrently; yield one :class:`SendOutcome` per item.

        ``requests`` is any iterable (or, async, any async iterable) of dicts of the keyword
        arguments of a send method (typed as :data:`telnyx_msg.SendItem`, so a checker catches a
        misspelled key); it is consumed lazily. ``method="auto"`` picks
        ``send_whatsapp`` for items with ``whatsapp_message``, ``send_group_mms`` when ``to``
        is a list, else ``send``. At most ``concurrency`` sends are in flight; the client's
        connection pool grows to it, or to the sum of the runs sharing the client at once (a
        session you passed in limits it to its connector's).
        ``skip_optouts=True`` lists the account's opt-outs once and reports items to opted-out
        recipients (for a group MMS, any one of them) as ``not_sent`` without sending.
        Outcomes come in completion order; see ``docs/bulk-sending.md`` for the statuses and
        stopping.
        """
        return self._runner._send_many(requests, concurrency, method, on_stop, skip_optouts)


class AlphanumericSenderIds(Resource[M]):
    """Alphanumeric sender IDs of the account."""

    with_raw_response: AlphanumericSenderIds[Raw[M]]

    list = PagedOp(ep.list_alphanumeric_sender_ids)
    create = Op(ep.create_alphanumeric_sender_id)
    retrieve = Op(ep.retrieve_alphanumeric_sender_id)
    delete = Op(ep.delete_alphanumeric_sender_id)


class MessagingHostedNumbers(Resource[M]):
    """Phone numbers and their messaging settings."""

    with_raw_response: MessagingHostedNumbers[Raw[M]]

    list = PagedOp(ep.list_hosted_numbers)
    retrieve = Op(ep.retrieve_hosted_number)
    update = Op(ep.update_hosted_number)
    delete = Op(ep.delete_hosted_number)


class MessagingOptouts(Resource[M]):
    """Recipients who opted out (STOP)."""

    with_raw_response: MessagingOptouts[Raw[M]]

    list = PagedOp(ep.list_optouts)


class MessagingProfileMetrics(Resource[M]):
    """High-level metrics of all messaging profiles."""

    with_raw_response: MessagingProfileMetrics[Raw[M]]

    list = Op(ep.list_profile_metrics)


class MessagingProfileActions(Resource[M]):
    """Actions on a messaging profile."""

    with_raw_response: MessagingProfileActions[Raw[M]]

    _path = "messaging_profiles.actions"

    regenerate_secret = Op(ep.regenerate_profile_secret)


class AutorespConfigs(Resource[M]):
    """Auto-response settings of a messaging profile."""

    with_raw_response: AutorespConfigs[Raw[M]]

    _path = "messaging_profiles.autoresp_configs"

    list = Op(ep.list_autoresp_configs)
    create = Op(ep.create_autoresp_config)
    retrieve = Op(ep.retrieve_autoresp_config)
    update = Op(ep.update_autoresp_config)
    delete = Op(ep.delete_autoresp_config)


class MessagingProfiles(Resource[M]):
    """Messaging profiles: CRUD, their numbers, sender IDs, metrics, actions, auto-responses."""

    with_raw_response: MessagingProfiles[Raw[M]]

    list = PagedOp(ep.list_messaging_profiles)
    create = Op(ep.create_messaging_profile)
    retrieve = Op(ep.retrieve_messaging_profile)
    update = Op(ep.update_messaging_profile)
    delete = Op(ep.delete_messaging_profile)
    list_phone_numbers = PagedOp(ep.list_profile_phone_numbers)
    list_short_codes = PagedOp(ep.list_profile_short_codes)
    list_alphanumeric_sender_ids = PagedOp(ep.list_profile_alphanumeric_sender_ids)
    retrieve_metrics = Op(ep.retrieve_profile_metrics)

    def __init__(self, runner: Runner) -> None:
        super().__init__(runner)
        self.actions: MessagingProfileActions[M] = MessagingProfileActions(runner)
        self.autoresp_configs: AutorespConfigs[M] = AutorespConfigs(runner)


class PhoneNumberMessaging(Resource[M]):
    """Messaging settings of the account's phone numbers."""

    with_raw_response: PhoneNumberMessaging[Raw[M]]

    _path = "phone_numbers.messaging"

    list = PagedOp(ep.list_phone_numbers_messaging)
    retrieve = Op(ep.retrieve_phone_number_messaging)
    update = Op(ep.update_phone_number_messaging)


class PhoneNumbers(Resource[M]):
    """Phone numbers (only their ``messaging`` settings are in scope)."""

    with_raw_response: PhoneNumbers[Raw[M]]

    def __init__(self, runner: Runner) -> None:
        super().__init__(runner)
        self.messaging: PhoneNumberMessaging[M] = PhoneNumberMessaging(runner)


class ShortCodes(Resource[M]):
    """Short codes of the account and the profiles they are bound to."""

    with_raw_response: ShortCodes[Raw[M]]

    list = PagedOp(ep.list_short_codes)
    retrieve = Op(ep.retrieve_short_code)
    update = Op(ep.update_short_code)


class MessagingNumbersBulkUpdates(Resource[M]):
    """Orders that set the messaging profile of many numbers at once."""

    with_raw_response: MessagingNumbersBulkUpdates[Raw[M]]

    create = Op(ep.create_bulk_update)
    retrieve = Op(ep.retrieve_bulk_update)


class ResourceTree(Generic[M]):
    """The resources both clients expose, built over one runner."""

    messages: Messages[M]
    alphanumeric_sender_ids: AlphanumericSenderIds[M]
    messaging_hosted_numbers: MessagingHostedNumbers[M]
    messaging_optouts: MessagingOptouts[M]
    messaging_profile_metrics: MessagingProfileMetrics[M]
    messaging_profiles: MessagingProfiles[M]
    phone_numbers: PhoneNumbers[M]
    short_codes: ShortCodes[M]
    messaging_numbers_bulk_updates: MessagingNumbersBulkUpdates[M]

    def _attach_resources(self, runner: Runner) -> None:
        self.messages = Messages(runner)
        self.alphanumeric_sender_ids = AlphanumericSenderIds(runner)
        self.messaging_hosted_numbers = MessagingHostedNumbers(runner)
        self.messaging_optouts = MessagingOptouts(runner)
        self.messaging_profile_metrics = MessagingProfileMetrics(runner)
        self.messaging_profiles = MessagingProfiles(runner)
        self.phone_numbers = PhoneNumbers(runner)
        self.short_codes = ShortCodes(runner)
        self.messaging_numbers_bulk_updates = MessagingNumbersBulkUpdates(runner)
