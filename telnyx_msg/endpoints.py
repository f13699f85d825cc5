"""The catalogue: one declarative spec per Telnyx Messaging operation (44 in all).

Adding an endpoint = one line here + its request model in ``_requests.py`` (+ a response model
in ``models.py`` if it returns a new shape) + one line on its resource in ``_resources.py``.
Wire facts per operation: Telnyx's OpenAPI definition (team-telnyx/openapi, openapi/spec3.yml at
commit 12de4dd039fd867f7a81c8ec415e6fb6477d5687; its messaging part is vendored as
``tests/openapi/messaging.json``, against which ``tests/test_openapi_conformance.py`` checks
this catalogue). Older comments cite sections of the project's wire notes.
"""

from __future__ import annotations

from telnyx_msg import _requests as rq
from telnyx_msg import models as m
from telnyx_msg._spec import endpoint, list_endpoint, none_endpoint, paged_endpoint

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

# Messages (§3). Sends accept an Idempotency-Key, except schedule (§1.6).
send_message = endpoint("POST", "/messages", rq.SendMessage, m.Message,
                        send=True, accepts_idempotency_key=True)
send_alphanumeric = endpoint("POST", "/messages/alphanumeric_sender_id", rq.SendAlphanumeric,
                             m.Message, send=True, accepts_idempotency_key=True)
send_group_mms = endpoint("POST", "/messages/group_mms", rq.SendGroupMms, m.Message,
                          send=True, accepts_idempotency_key=True)
send_long_code = endpoint("POST", "/messages/long_code", rq.SendLongCode, m.Message,
                          send=True, accepts_idempotency_key=True)
send_number_pool = endpoint("POST", "/messages/number_pool", rq.SendNumberPool, m.Message,
                            send=True, accepts_idempotency_key=True)
send_short_code = endpoint("POST", "/messages/short_code", rq.SendShortCode, m.Message,
                           send=True, accepts_idempotency_key=True)
schedule_message = endpoint("POST", "/messages/schedule", rq.ScheduleMessage, m.Message)
send_whatsapp = endpoint("POST", "/messages/whatsapp", rq.SendWhatsApp, m.WhatsAppMessage,
                         send=True, accepts_idempotency_key=True)
retrieve_message = endpoint("GET", "/messages/{id}", rq.ById, m.Message)
# §3.11: the cancelled message comes back without a "data" wrapper.
cancel_scheduled_message = endpoint("DELETE", "/messages/{id}", rq.ById, m.Message,
                                    envelope="bare")
retrieve_group_messages = list_endpoint("GET", "/messages/group/{message_id}", rq.ByMessageId,
                                        m.Message)

# Alphanumeric sender IDs (§5).
list_alphanumeric_sender_ids = paged_endpoint("/alphanumeric_sender_ids",
                                              rq.ListAlphanumericSenderIds,
                                              m.AlphanumericSenderId)
create_alphanumeric_sender_id = endpoint("POST", "/alphanumeric_sender_ids",
                                         rq.CreateAlphanumericSenderId, m.AlphanumericSenderId)
retrieve_alphanumeric_sender_id = endpoint("GET", "/alphanumeric_sender_ids/{id}", rq.ById,
                                           m.AlphanumericSenderId)
delete_alphanumeric_sender_id = endpoint("DELETE", "/alphanumeric_sender_ids/{id}", rq.ById,
                                         m.AlphanumericSenderId)

# Hosted numbers (§6). The PATCH body assigns absolute values, so repeating it is harmless.
list_hosted_numbers = paged_endpoint("/messaging_hosted_numbers", rq.ListHostedNumbers,
                                     m.HostedNumber)
retrieve_hosted_number = endpoint("GET", "/messaging_hosted_numbers/{id}", rq.ById,
                                  m.HostedNumber)
update_hosted_number = endpoint("PATCH", "/messaging_hosted_numbers/{id}",
                                rq.UpdateHostedNumber, m.HostedNumber, idempotent=True)
# The definition answers this DELETE with the hosted-number order, not the number.
delete_hosted_number = endpoint("DELETE", "/messaging_hosted_numbers/{id}", rq.ById,
                                m.HostedNumberOrder)

# Opt-outs (§7) and metrics (§8): the metrics list is one response with data + meta.
list_optouts = paged_endpoint("/messaging_optouts", rq.ListOptOuts, m.OptOut)
list_profile_metrics = endpoint("GET", "/messaging_profile_metrics", rq.ListProfileMetrics,
                                m.ProfileMetricsOverview, envelope="bare")
retrieve_profile_metrics = endpoint("GET", "/messaging_profiles/{id}/metrics",
                                    rq.RetrieveProfileMetrics, m.ProfileMetrics)

# Messaging profiles (§9).
# The definition documents no request body for this POST, so none is sent.
regenerate_profile_secret = endpoint("POST", "/messaging_profiles/{id}/actions/regenerate_secret",
                                     rq.ById, m.MessagingProfile, json_body=False)
list_profile_alphanumeric_sender_ids = paged_endpoint(
    "/messaging_profiles/{id}/alphanumeric_sender_ids", rq.ListProfileAlphanumericSenderIds,
    m.AlphanumericSenderId)
list_autoresp_configs = list_endpoint("GET", "/messaging_profiles/{profile_id}/autoresp_configs",
                                      rq.ListAutorespConfigs, m.AutorespConfig)
create_autoresp_config = endpoint("POST", "/messaging_profiles/{profile_id}/autoresp_configs",
                                  rq.CreateAutorespConfig, m.AutorespConfig)
retrieve_autoresp_config = endpoint(
    "GET", "/messaging_profiles/{profile_id}/autoresp_configs/{autoresp_cfg_id}",
    rq.AutorespConfigRef, m.AutorespConfig)
update_autoresp_config = endpoint(
    "PUT", "/messaging_profiles/{profile_id}/autoresp_configs/{autoresp_cfg_id}",
    rq.UpdateAutorespConfig, m.AutorespConfig)
# §9.4: the body of a successful delete is the JSON string "OK".
delete_autoresp_config = none_endpoint(
    "DELETE", "/messaging_profiles/{profile_id}/autoresp_configs/{autoresp_cfg_id}",
    rq.AutorespConfigRef)

# Messaging profiles. A PATCH sets absolute values, so repeating it is harmless; a create is not.
list_messaging_profiles = paged_endpoint("/messaging_profiles", rq.ListMessagingProfiles,
                                         m.MessagingProfile)
create_messaging_profile = endpoint("POST", "/messaging_profiles", rq.CreateMessagingProfile,
                                    m.MessagingProfile)
retrieve_messaging_profile = endpoint("GET", "/messaging_profiles/{id}", rq.ById,
                                      m.MessagingProfile)
update_messaging_profile = endpoint("PATCH", "/messaging_profiles/{id}",
                                    rq.UpdateMessagingProfile, m.MessagingProfile,
                                    idempotent=True)
# The deleted profile comes back in "data".
delete_messaging_profile = endpoint("DELETE", "/messaging_profiles/{id}", rq.ById,
                                    m.MessagingProfile)
list_profile_phone_numbers = paged_endpoint("/messaging_profiles/{id}/phone_numbers",
                                            rq.ListProfilePhoneNumbers, m.HostedNumber)
list_profile_short_codes = paged_endpoint("/messaging_profiles/{id}/short_codes",
                                          rq.ListProfileShortCodes, m.ShortCode)

# Messaging settings of phone numbers; {id} is any string, percent-encoded ("+" included).
list_phone_numbers_messaging = paged_endpoint("/phone_numbers/messaging",
                                              rq.ListPhoneNumbersMessaging, m.HostedNumber)
retrieve_phone_number_messaging = endpoint("GET", "/phone_numbers/{id}/messaging", rq.ById,
                                           m.HostedNumber)
update_phone_number_messaging = endpoint("PATCH", "/phone_numbers/{id}/messaging",
                                         rq.UpdatePhoneNumberMessaging, m.HostedNumber,
                                         idempotent=True)

# Short codes.
list_short_codes = paged_endpoint("/short_codes", rq.ListShortCodes, m.ShortCode)
retrieve_short_code = endpoint("GET", "/short_codes/{id}", rq.ById, m.ShortCode)
update_short_code = endpoint("PATCH", "/short_codes/{id}", rq.UpdateShortCode, m.ShortCode,
                             idempotent=True)

# Bulk profile assignment: each POST starts a new order, so it is not retried blindly.
create_bulk_update = endpoint("POST", "/messaging_numbers_bulk_updates", rq.CreateBulkUpdate,
                              m.MessagingNumbersBulkUpdate)
retrieve_bulk_update = endpoint("GET", "/messaging_numbers_bulk_updates/{order_id}",
                                rq.ByOrderId, m.MessagingNumbersBulkUpdate)
