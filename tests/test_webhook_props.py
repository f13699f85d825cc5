"""Property tests of WebhookVerifier: no false accepts, no foreign exceptions (G7, G8, G9).

Each property runs 2,000 examples; the ``slow`` variants run 10,000 (signed nested documents:
1,000 and 3,000).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from telnyx_msg.errors import (
    InvalidSignatureError,
    MissingHeaderError,
    TimestampError,
    WebhookPayloadError,
    WebhookVerificationError,
)
from telnyx_msg.models import WebhookEvent
from telnyx_msg.webhooks import MemoryReplayStore, WebhookVerifier
from tests.conftest import examples

NOW = 1_700_000_000
KEY = Ed25519PrivateKey.generate()
PUBLIC = base64.b64encode(KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
VERIFIER = WebhookVerifier(PUBLIC, clock=lambda: NOW)
SIG = "telnyx-signature-ed25519"
TS = "telnyx-timestamp"

FAST = settings(
    max_examples=examples(2000), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
SLOW = settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def sign(body: bytes, timestamp: str = str(NOW)) -> dict[str, str]:
    signature = KEY.sign(timestamp.encode("utf-8", "surrogatepass") + b"|" + body)
    return {SIG: base64.b64encode(signature).decode("ascii"), TS: timestamp}


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def both(
    strategy: Callable[[Callable[..., None]], Callable[..., None]],
    prop: Callable[..., None],
    *,
    fast: settings = FAST,
    slow: settings = SLOW,
) -> tuple[Callable[..., None], Callable[..., None]]:
    """The property at 2,000 examples, and a slow-marked copy at 10,000."""
    return fast(strategy(prop)), pytest.mark.slow(slow(strategy(prop)))


# --- single bit flips: zero false accepts ------------------------------------------------------


def _body_flip(body: bytes, data: st.DataObject) -> None:
    """Flipping any bit of a signed body fails the signature check."""
    headers = sign(body)
    bit = data.draw(st.integers(0, len(body) * 8 - 1))
    with pytest.raises(InvalidSignatureError):
        VERIFIER.verify(flip(body, bit), headers)


def _timestamp_flip(offset: int, body: bytes, data: st.DataObject) -> None:
    """Flipping any bit of the timestamp header text is rejected."""
    timestamp = str(NOW + offset)
    headers = sign(body, timestamp)
    bit = data.draw(st.integers(0, len(timestamp) * 8 - 1))
    flipped = flip(timestamp.encode("ascii"), bit).decode("latin-1")
    headers[TS] = flipped
    with pytest.raises((TimestampError, InvalidSignatureError)):
        VERIFIER.verify(body, headers)


def _signature_flip(body: bytes, data: st.DataObject) -> None:
    """Flipping any bit of the 64 signature bytes fails verification."""
    headers = sign(body)
    raw = base64.b64decode(headers[SIG])
    bit = data.draw(st.integers(0, 64 * 8 - 1))
    headers[SIG] = base64.b64encode(flip(raw, bit)).decode("ascii")
    with pytest.raises(InvalidSignatureError):
        VERIFIER.verify(body, headers)


def _signature_text_flip(body: bytes, data: st.DataObject) -> None:
    """Flipping any bit of the base64 signature header text is rejected."""
    headers = sign(body)
    text = headers[SIG].encode("ascii")
    bit = data.draw(st.integers(0, len(text) * 8 - 1))
    headers[SIG] = flip(text, bit).decode("latin-1")
    # "+" flips to ",": what WSGI servers join a repeated header with, so reported as repeated.
    with pytest.raises(MissingHeaderError if "," in headers[SIG] else InvalidSignatureError):
        VERIFIER.verify(body, headers)


_bodies = st.binary(min_size=1, max_size=1500)
_flip_body = given(body=_bodies, data=st.data())
_flip_ts = given(offset=st.integers(-300, 300), body=st.binary(max_size=300), data=st.data())

test_body_bit_flip_rejected, test_body_bit_flip_rejected_10k = both(_flip_body, _body_flip)
test_timestamp_bit_flip_rejected, test_timestamp_bit_flip_rejected_10k = both(
    _flip_ts, _timestamp_flip
)
test_signature_bit_flip_rejected, test_signature_bit_flip_rejected_10k = both(
    _flip_body, _signature_flip
)
test_signature_text_bit_flip_rejected, test_signature_text_bit_flip_rejected_10k = both(
    _flip_body, _signature_text_flip
)


# --- robustness: only the library's own errors -------------------------------------------------

_name_variants = st.sampled_from(
    [SIG, TS, SIG.upper(), TS.title(), "Telnyx-Signature-Ed25519", "content-type", "x"]
)
_header_values: st.SearchStrategy[Any] = st.one_of(
    st.text(max_size=100),
    st.sampled_from([str(NOW), str(NOW - 301), "A" * 88, "A" * 86 + "==", sign(b"")[SIG]]),
    st.binary(max_size=100),
    st.lists(st.text(max_size=20), max_size=3),
    st.integers(),
    st.none(),
    st.floats(),
)
_header_maps: st.SearchStrategy[Any] = st.one_of(
    st.dictionaries(st.one_of(_name_variants, st.text(max_size=30)), _header_values, max_size=8),
    st.lists(st.tuples(_name_variants, st.text(max_size=100)), max_size=6).map(CIMultiDict),
)


def _arbitrary_input(body: bytes, headers: Any) -> None:
    """Arbitrary bodies and header maps raise only WebhookVerificationError subclasses."""
    with contextlib.suppress(WebhookVerificationError):
        VERIFIER.unwrap(body, headers)


def _signed_arbitrary_bytes(body: bytes) -> None:
    """Any signed bytes (UTF-8 or not) verify; parsing gives an event or WebhookPayloadError."""
    headers = sign(body)
    VERIFIER.verify(body, headers)
    with contextlib.suppress(WebhookPayloadError):
        VERIFIER.unwrap(body, headers)


_robust = given(body=st.binary(max_size=2000), headers=_header_maps)
test_arbitrary_input_raises_only_own_errors, test_arbitrary_input_raises_only_own_errors_10k = both(
    _robust, _arbitrary_input
)
test_signed_arbitrary_bytes_verify, test_signed_arbitrary_bytes_verify_10k = both(
    given(body=st.binary(max_size=2000)), _signed_arbitrary_bytes
)

_json: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(
        [
            "message.sent",
            "message.finalized",
            "message.received",
            "link_clicked",
            "2024-01-01T00:00:00Z",
            "delivered",
            "event",
        ]
    ),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "to",
                    "from",
                    "cost",
                    "amount",
                    "status",
                    "payload",
                    "event_type",
                    "record_type",
                    "occurred_at",
                    "time_clicked",
                    "meta",
                    "attempt",
                    "media",
                    "errors",
                    "tags",
                    "completed_at",
                    "parts",
                    "text",
                    "url",
                    "message_id",
                ]
            )
            | st.text(max_size=5),
            children,
            max_size=4,
        )
    ),
    max_leaves=8,
)
_documents = st.fixed_dictionaries(
    {
        "data": st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "event_type",
                    "record_type",
                    "occurred_at",
                    "payload",
                    "url",
                    "time_clicked",
                    "message_id",
                ]
            ),
            _json,
        )
    },
    optional={"meta": _json},
)


def _signed_documents(document: dict[str, Any]) -> None:
    """Signed JSON documents of any shape give an event or WebhookPayloadError, nothing else."""
    body = json.dumps(document).encode()
    try:
        event = VERIFIER.unwrap(body, sign(body))
    except WebhookPayloadError:
        return
    assert isinstance(event, WebhookEvent)


# Generating nested documents is slow (about 12 ms each), so the fast run uses 1,000 of them and
# the slow one 3,000 (10,000 took two minutes of CI).
test_signed_documents_parse_or_payload_error, test_signed_documents_3k = both(
    given(document=_documents),
    _signed_documents,
    fast=settings(FAST, max_examples=examples(1000)),
    slow=settings(SLOW, max_examples=3000),
)


# --- input-type equivalence and strict header parsing ------------------------------------------


def _same_outcome(call: Callable[[], object]) -> tuple[str, object]:
    try:
        return "ok", call()
    except WebhookVerificationError as exc:
        return type(exc).__name__, str(exc)


def _input_types_equivalent(text: str, tamper: bool) -> None:
    """bytes, bytearray, memoryview and str bodies give identical results."""
    body = text.encode("utf-8")
    headers = sign(body if not tamper else body + b" ")
    outcomes = {
        repr(_same_outcome(functools.partial(VERIFIER.unwrap, raw, headers)))
        for raw in (body, bytearray(body), memoryview(body), text)
    }
    assert len(outcomes) == 1


test_input_types_equivalent, test_input_types_equivalent_10k = both(
    given(text=st.text(max_size=500), tamper=st.booleans()), _input_types_equivalent
)

_TIMESTAMP_RE = re.compile(r"[0-9]{1,12}", re.ASCII)


def _timestamp_grammar(timestamp: str) -> None:
    """A correctly signed timestamp is accepted exactly when it matches ^[0-9]{1,12}$."""
    body = b"{}"
    headers = sign(body, timestamp)
    valid = _TIMESTAMP_RE.fullmatch(timestamp) is not None
    verifier = WebhookVerifier(PUBLIC, clock=lambda: int(timestamp) if valid else NOW)
    if valid:
        verifier.verify(body, headers)
    else:
        # A comma is how WSGI servers join a repeated header: reported as repeated.
        with pytest.raises(MissingHeaderError if "," in timestamp else TimestampError):
            verifier.verify(body, headers)


_timestamps = st.one_of(
    st.text(max_size=14),
    st.text(alphabet="0123456789 _+-.\u0661\uff11", max_size=14),
    st.integers(0, 10**13).map(str),
)
test_timestamp_grammar, test_timestamp_grammar_10k = both(
    given(timestamp=_timestamps), _timestamp_grammar
)


def _signature_text(signature: str) -> None:
    """An arbitrary signature header is never accepted unless it is the real signature."""
    body = b"{}"
    headers = sign(body)
    real = headers[SIG]
    headers[SIG] = signature
    if signature == real:
        VERIFIER.verify(body, headers)
    else:
        # A comma is how WSGI servers join a repeated header: reported as repeated.
        with pytest.raises(MissingHeaderError if "," in signature else InvalidSignatureError):
            VERIFIER.verify(body, headers)


test_arbitrary_signature_text_rejected, test_arbitrary_signature_text_rejected_10k = both(
    given(
        signature=st.one_of(
            st.text(max_size=100),
            st.text(
                alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=",
                min_size=86,
                max_size=90,
            ),
            st.just(sign(b"{}")[SIG]),
        )
    ),
    _signature_text,
)


@FAST
@given(ids=st.lists(st.text(min_size=1, max_size=8), max_size=50), size=st.integers(1, 10))
def test_memory_store_bound_and_membership(ids: list[str], size: int) -> None:
    """The memory store never exceeds max_size and always remembers the newest id."""
    store = MemoryReplayStore(max_size=size)
    for event_id in ids:
        store.mark_if_new(event_id, 601)
        assert len(store) <= size
        assert store.seen(event_id)
