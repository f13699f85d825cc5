"""The catalogue: one declarative spec per Telnyx Messaging operation (44 in all).

Adding an endpoint = one line here + its request model in ``_requests.py`` (+ a response model
in ``models.py`` if it returns a new shape) + one line on its resource in ``_resources.py``.
Wire facts per operation: Telnyx's OpenAPI definition (team-telnyx/openapi, openapi/spec3.yml at
commit 12de4dd039fd867f7a81c8ec415e6fb6477d5687; its messaging part is vendored as
``tests/openapi/messaging.json``, against which ``tests/test_openapi_conformance.py`` checks
this catalogue).
"""

from __future__ import annotations

from telnyx_msg import _requests as rq
from telnyx_msg import models as m
from telnyx_msg._spec import Lane, endpoint, list_endpoint, none_endpoint, paged_endpoint

__all__ = [
    "cancel_scheduled_message",
    "create_alphanumeric_sender_id",
    "create_autoresp_config",
    "create_bulk_update",
    "create_messaging_profile",
    "delete_alphanumeric_sender_id",
    "delete_autoresp_config",
    "delete_hosted_number",
    "delete_messaging_profile",
    "list_alphanumeric_sender_ids",
    "list_autoresp_configs",
    "list_hosted_numbers",
    "list_messaging_profiles",
    "list_optouts",
    "list_phone_numbers_messaging",
    "list_profile_alphanumeric_sender_ids",
    "list_profile_metrics",
    "list_profile_phone_numbers",
    "list_profile_short_codes",
    "list_short_codes",
    "regenerate_profile_secret",
    "retrieve_alphanumeric_sender_id",
    "retrieve_autoresp_config",
    "retrieve_bulk_update",
    "retrieve_group_messages",
    "retrieve_hosted_number",
    "retrieve_message",
    "retrieve_messaging_profile",
    "retrieve_phone_number_messaging",
    "retrieve_profile_metrics",
    "retrieve_short_code",
    "schedule_message",
    "send_alphanumeric",
    "send_group_mms",
    "send_long_code",
    "send_message",
    "send_number_pool",
    "send_short_code",
    "send_whatsapp",
    "update_autoresp_config",
    "update_hosted_number",
    "update_messaging_profile",
    "update_phone_number_messaging",
    "update_short_code",
]

# Messages. Every send accepts an Idempotency-Key except schedule, whose operation declares
# no such header in Telnyx's API definition.
send_message = endpoint(
    "POST",
    "/messages",
    rq.SendMessage,
    m.Message,
    send=True,
    accepts_idempotency_key=True,
    doc=(
        "Send an SMS or MMS from a long code, toll-free number, short code or alphanumeric "
        "sender ID, or from a messaging profile's number pool (messaging_profile_id)."
    ),
)
send_alphanumeric = endpoint(
    "POST",
    "/messages/alphanumeric_sender_id",
    rq.SendAlphanumeric,
    m.Message,
    send=True,
    accepts_idempotency_key=True,
    doc="Send an SMS from an alphanumeric sender ID of a messaging profile.",
)
send_group_mms = endpoint(
    "POST",
    "/messages/group_mms",
    rq.SendGroupMms,
    m.Message,
    send=True,
    lane=Lane(message_type="MMS"),
    accepts_idempotency_key=True,
    doc="Send one MMS to a group of up to 8 recipients.",
)
send_long_code = endpoint(
    "POST",
    "/messages/long_code",
    rq.SendLongCode,
    m.Message,
    send=True,
    accepts_idempotency_key=True,
    doc="Send an SMS or MMS from a long code.",
)
send_number_pool = endpoint(
    "POST",
    "/messages/number_pool",
    rq.SendNumberPool,
    m.Message,
    send=True,
    accepts_idempotency_key=True,
    doc=(
        "Send an SMS or MMS from the number pool of a messaging profile (the pool picks the "
        "sender)."
    ),
)
send_short_code = endpoint(
    "POST",
    "/messages/short_code",
    rq.SendShortCode,
    m.Message,
    send=True,
    lane=Lane(short_code=True),
    accepts_idempotency_key=True,
    doc="Send an SMS or MMS from a short code.",
)
schedule_message = endpoint(
    "POST",
    "/messages/schedule",
    rq.ScheduleMessage,
    m.Message,
    doc="Schedule a message for send_at (no Idempotency-Key on this endpoint).",
)
send_whatsapp = endpoint(
    "POST",
    "/messages/whatsapp",
    rq.SendWhatsApp,
    m.WhatsAppMessage,
    send=True,
    # The SMS account lane only (never media_urls): Telnyx's per-number SMS queue, which the
    # sender lanes model, is not where WhatsApp messages wait.
    lane=Lane(message_type="SMS", sender_fields=()),
    accepts_idempotency_key=True,
    doc="Send a WhatsApp message; whatsapp_message is passed through as given.",
)
retrieve_message = endpoint(
    "GET",
    "/messages/{id}",
    rq.ById,
    m.Message,
    doc="Retrieve a message by id, outbound or inbound (direction tells which).",
)
# The cancelled message comes back without a "data" wrapper.
cancel_scheduled_message = endpoint(
    "DELETE",
    "/messages/{id}",
    rq.ById,
    m.Message,
    envelope="bare",
    doc="Cancel a scheduled message; returns it with status cancelled.",
)
retrieve_group_messages = list_endpoint(
    "GET",
    "/messages/group/{message_id}",
    rq.ByMessageId,
    m.Message,
    doc="Retrieve the messages of a group MMS, one per recipient.",
)

# Alphanumeric sender IDs.
list_alphanumeric_sender_ids = paged_endpoint(
    "/alphanumeric_sender_ids",
    rq.ListAlphanumericSenderIds,
    m.AlphanumericSenderId,
    doc="List the account's alphanumeric sender IDs (filter by messaging profile).",
)
create_alphanumeric_sender_id = endpoint(
    "POST",
    "/alphanumeric_sender_ids",
    rq.CreateAlphanumericSenderId,
    m.AlphanumericSenderId,
    doc="Create an alphanumeric sender ID on a messaging profile.",
)
retrieve_alphanumeric_sender_id = endpoint(
    "GET",
    "/alphanumeric_sender_ids/{id}",
    rq.ById,
    m.AlphanumericSenderId,
    doc="Retrieve an alphanumeric sender ID.",
)
delete_alphanumeric_sender_id = endpoint(
    "DELETE",
    "/alphanumeric_sender_ids/{id}",
    rq.ById,
    m.AlphanumericSenderId,
    doc="Delete an alphanumeric sender ID; returns it.",
)

# Hosted numbers. The PATCH body assigns absolute values, so repeating it is harmless.
list_hosted_numbers = paged_endpoint(
    "/messaging_hosted_numbers",
    rq.ListHostedNumbers,
    m.HostedNumber,
    doc="List phone numbers with their messaging settings.",
)
retrieve_hosted_number = endpoint(
    "GET",
    "/messaging_hosted_numbers/{id}",
    rq.ById,
    m.HostedNumber,
    doc="Retrieve a phone number's messaging settings.",
)
update_hosted_number = endpoint(
    "PATCH",
    "/messaging_hosted_numbers/{id}",
    rq.UpdateHostedNumber,
    m.HostedNumber,
    idempotent=True,
    doc='Update a number\'s messaging settings; messaging_profile_id="" unassigns it.',
)
# The definition answers this DELETE with the hosted-number order, not the number.
delete_hosted_number = endpoint(
    "DELETE",
    "/messaging_hosted_numbers/{id}",
    rq.ById,
    m.HostedNumberOrder,
    doc="Delete a hosted number; returns the hosted-number order.",
)

# Opt-outs and metrics: the metrics list is one response with data + meta.
list_optouts = paged_endpoint(
    "/messaging_optouts",
    rq.ListOptOuts,
    m.OptOut,
    doc="List recipients who opted out (STOP), filtered by profile, sender or date.",
)
list_profile_metrics = endpoint(
    "GET",
    "/messaging_profile_metrics",
    rq.ListProfileMetrics,
    m.ProfileMetricsOverview,
    envelope="bare",
    doc="High-level metrics of every messaging profile over time_frame.",
)
retrieve_profile_metrics = endpoint(
    "GET",
    "/messaging_profiles/{id}/metrics",
    rq.RetrieveProfileMetrics,
    m.ProfileMetrics,
    doc="Overview and detailed metrics of one messaging profile.",
)

# Messaging profiles.
# The definition documents no request body for this POST, so none is sent.
regenerate_profile_secret = endpoint(
    "POST",
    "/messaging_profiles/{id}/actions/regenerate_secret",
    rq.ById,
    m.MessagingProfile,
    json_body=False,
    doc="Regenerate a messaging profile's v1 secret; returns the profile.",
)
list_profile_alphanumeric_sender_ids = paged_endpoint(
    "/messaging_profiles/{id}/alphanumeric_sender_ids",
    rq.ListProfileAlphanumericSenderIds,
    m.AlphanumericSenderId,
    doc="List the alphanumeric sender IDs of a messaging profile.",
)
list_autoresp_configs = list_endpoint(
    "GET",
    "/messaging_profiles/{profile_id}/autoresp_configs",
    rq.ListAutorespConfigs,
    m.AutorespConfig,
    doc="List a messaging profile's auto-response settings.",
)
create_autoresp_config = endpoint(
    "POST",
    "/messaging_profiles/{profile_id}/autoresp_configs",
    rq.CreateAutorespConfig,
    m.AutorespConfig,
    doc="Create an auto-response setting (keywords that trigger start, stop or info).",
)
retrieve_autoresp_config = endpoint(
    "GET",
    "/messaging_profiles/{profile_id}/autoresp_configs/{autoresp_cfg_id}",
    rq.AutorespConfigRef,
    m.AutorespConfig,
    doc="Retrieve an auto-response setting.",
)
update_autoresp_config = endpoint(
    "PUT",
    "/messaging_profiles/{profile_id}/autoresp_configs/{autoresp_cfg_id}",
    rq.UpdateAutorespConfig,
    m.AutorespConfig,
    doc="Replace an auto-response setting (same fields as create).",
)
# The body of a successful delete is the JSON string "OK".
delete_autoresp_config = none_endpoint(
    "DELETE",
    "/messaging_profiles/{profile_id}/autoresp_configs/{autoresp_cfg_id}",
    rq.AutorespConfigRef,
    doc="Delete an auto-response setting.",
)

# Messaging profiles. A PATCH sets absolute values, so repeating it is harmless; a create is not.
list_messaging_profiles = paged_endpoint(
    "/messaging_profiles",
    rq.ListMessagingProfiles,
    m.MessagingProfile,
    doc="List messaging profiles, optionally filtered by name.",
)
create_messaging_profile = endpoint(
    "POST",
    "/messaging_profiles",
    rq.CreateMessagingProfile,
    m.MessagingProfile,
    doc="Create a messaging profile (name and whitelisted destinations, webhook URLs, ...).",
)
retrieve_messaging_profile = endpoint(
    "GET",
    "/messaging_profiles/{id}",
    rq.ById,
    m.MessagingProfile,
    doc="Retrieve a messaging profile.",
)
update_messaging_profile = endpoint(
    "PATCH",
    "/messaging_profiles/{id}",
    rq.UpdateMessagingProfile,
    m.MessagingProfile,
    idempotent=True,
    doc="Update a messaging profile; only the fields given change.",
)
# The deleted profile comes back in "data".
delete_messaging_profile = endpoint(
    "DELETE",
    "/messaging_profiles/{id}",
    rq.ById,
    m.MessagingProfile,
    doc="Delete a messaging profile; returns it.",
)
list_profile_phone_numbers = paged_endpoint(
    "/messaging_profiles/{id}/phone_numbers",
    rq.ListProfilePhoneNumbers,
    m.HostedNumber,
    doc="List the phone numbers assigned to a messaging profile.",
)
list_profile_short_codes = paged_endpoint(
    "/messaging_profiles/{id}/short_codes",
    rq.ListProfileShortCodes,
    m.ShortCode,
    doc="List the short codes assigned to a messaging profile.",
)

# Messaging settings of phone numbers; {id} is any string, percent-encoded ("+" included).
list_phone_numbers_messaging = paged_endpoint(
    "/phone_numbers/messaging",
    rq.ListPhoneNumbersMessaging,
    m.HostedNumber,
    doc="List phone numbers with their messaging settings (filter by profile, number or type).",
)
retrieve_phone_number_messaging = endpoint(
    "GET",
    "/phone_numbers/{id}/messaging",
    rq.ById,
    m.HostedNumber,
    doc="Retrieve a phone number's messaging settings (by id or number).",
)
update_phone_number_messaging = endpoint(
    "PATCH",
    "/phone_numbers/{id}/messaging",
    rq.UpdatePhoneNumberMessaging,
    m.HostedNumber,
    idempotent=True,
    doc=(
        'Assign a phone number to a messaging profile ("" unassigns) or change its messaging '
        "product or tags."
    ),
)

# Short codes.
list_short_codes = paged_endpoint(
    "/short_codes", rq.ListShortCodes, m.ShortCode, doc="List the account's short codes."
)
retrieve_short_code = endpoint(
    "GET", "/short_codes/{id}", rq.ById, m.ShortCode, doc="Retrieve a short code."
)
update_short_code = endpoint(
    "PATCH",
    "/short_codes/{id}",
    rq.UpdateShortCode,
    m.ShortCode,
    idempotent=True,
    doc='Bind a short code to a messaging profile ("" unbinds).',
)

# Bulk profile assignment: each POST starts a new order, so it is not retried blindly.
create_bulk_update = endpoint(
    "POST",
    "/messaging_numbers_bulk_updates",
    rq.CreateBulkUpdate,
    m.MessagingNumbersBulkUpdate,
    doc='Assign many numbers to a messaging profile in one order ("" unassigns).',
)
retrieve_bulk_update = endpoint(
    "GET",
    "/messaging_numbers_bulk_updates/{order_id}",
    rq.ByOrderId,
    m.MessagingNumbersBulkUpdate,
    doc="Retrieve a bulk update order: its pending, successful and failed numbers.",
)
