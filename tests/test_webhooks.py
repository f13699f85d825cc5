"""WebhookVerifier, header helpers and MemoryReplayStore (sans-I/O)."""

from __future__ import annotations

import base64
import json
import pickle
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from multidict import CIMultiDict, CIMultiDictProxy

import telnyx_msg
from telnyx_msg.errors import (
    ConfigurationError,
    DuplicateWebhookError,
    InvalidSignatureError,
    MissingHeaderError,
    TimestampError,
    WebhookPayloadError,
    WebhookVerificationError,
)
from telnyx_msg.models import LinkClick, Message, WebhookEventType
from telnyx_msg.testing import FakeTelnyx, serve_in_thread
from telnyx_msg.webhooks import (
    MemoryReplayStore,
    SyncReplayStore,
    WebhookVerifier,
    headers_from_environ,
)

NOW = 1_700_000_000

# docs/wire.md §10.5 (generated with cryptography, accepted by the official SDK).
VECTOR_KEY = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
VECTOR_SEED = bytes(range(32))
VECTOR_BODY = (
    b'{"data":{"event_type":"message.received","id":"e1","occurred_at":'
    b'"2024-01-01T00:00:00.000+00:00","payload":{"id":"m1","direction":"inbound","text":"hi",'
    b'"to":[{"phone_number":"+15550001111","status":"webhook_delivered"}],'
    b'"from":{"phone_number":"+15550002222"}},"record_type":"event"},'
    b'"meta":{"attempt":1,"delivered_to":"https://example.com/hooks"}}'
)
VECTOR_HEADERS = {
    "telnyx-timestamp": "1700000000",
    "telnyx-signature-ed25519": (
        "//yej8CO+03p0vw2FWWWbuA3kNOesCqkQdvgmG4WshC3WKwak5Aie+49IYigX5x4rqhdcjwmyPJ+dbTi6Kf+Bg=="
    ),
}


def public_b64(private_key: Ed25519PrivateKey) -> str:
    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def sign(private_key: Ed25519PrivateKey, body: bytes, timestamp: str | int = NOW) -> dict[str, str]:
    ts = str(timestamp)
    signature = private_key.sign(ts.encode("ascii") + b"|" + body)
    return {
        "telnyx-signature-ed25519": base64.b64encode(signature).decode("ascii"),
        "telnyx-timestamp": ts,
    }


def event_body(
    event_type: str = "message.finalized",
    event_id: str | None = "evt-1",
    *,
    message_id: str = "msg-1",
    status: str = "delivered",
) -> bytes:
    data: dict[str, Any] = {
        "record_type": "event",
        "event_type": event_type,
        "occurred_at": "2024-01-01T00:00:00.000+00:00",
        "payload": {
            "id": message_id,
            "record_type": "message",
            "direction": "outbound",
            "to": [{"phone_number": "+15550001111", "status": status}],
            "from": {"phone_number": "+15550002222"},
            "text": "hi",
        },
    }
    if event_id is not None:
        data["id"] = event_id
    return json.dumps({"data": data, "meta": {"attempt": 1}}).encode()


LINK_CLICK_BODY = json.dumps(
    {
        "data": {
            "record_type": "link_clicked",
            "url": "https://example.com/x",
            "to": "18445550001",
            "message_id": "msg-9",
            "time_clicked": "2024-01-01T00:00:05.000+00:00",
        }
    }
).encode()


@pytest.fixture
def private_key() -> Ed25519PrivateKey:
    """A fresh signing key per test."""
    return Ed25519PrivateKey.generate()


@pytest.fixture
def verifier(private_key: Ed25519PrivateKey) -> WebhookVerifier:
    """A verifier for ``private_key`` with the clock frozen at NOW."""
    return WebhookVerifier(public_b64(private_key), clock=lambda: NOW)


class FakeClock:
    """A settable clock."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class GetlistHeaders(Mapping[str, str]):
    """A Starlette/Werkzeug-like case-insensitive multi-valued header map."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items

    def __getitem__(self, key: str) -> str:
        for name, value in self._items:
            if name.lower() == key.lower():
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(name for name, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def getlist(self, key: str) -> list[str]:
        return [v for n, v in self._items if n.lower() == key.lower()]


# --- known-answer tests ------------------------------------------------------------------------


def test_rfc8032_test_vector_1() -> None:
    """RFC 8032 §7.1 TEST 1 (empty message) signs and verifies through cryptography."""
    secret = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    expected = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e"
        "39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    private_key = Ed25519PrivateKey.from_private_bytes(secret)
    assert private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) == public
    assert private_key.sign(b"") == expected
    Ed25519PublicKey.from_public_bytes(public).verify(expected, b"")
    WebhookVerifier(base64.b64encode(public).decode())  # the key is accepted as a webhook key


def test_telnyx_vector_verifies_with_frozen_clock() -> None:
    """The docs/wire.md §10.5 vector verifies and parses into a typed message.received event."""
    assert public_b64(Ed25519PrivateKey.from_private_bytes(VECTOR_SEED)) == VECTOR_KEY
    verifier = WebhookVerifier(VECTOR_KEY, clock=lambda: 1_700_000_000)
    event = verifier.unwrap(VECTOR_BODY, VECTOR_HEADERS)
    assert event.event_type == WebhookEventType.MESSAGE_RECEIVED
    assert event.id == "e1"
    assert isinstance(event.payload, Message)
    assert event.payload.text == "hi"
    assert event.payload.from_ is not None
    assert event.payload.from_.phone_number == "+15550002222"
    assert event.meta is not None
    assert event.meta.attempt == 1


@pytest.mark.parametrize("now", [1_699_999_700, 1_700_000_300])
def test_telnyx_vector_window_edges_accepted(now: int) -> None:
    """The vector verifies at exactly ±300 s."""
    WebhookVerifier(VECTOR_KEY, clock=lambda: now).verify(VECTOR_BODY, VECTOR_HEADERS)


@pytest.mark.parametrize("now", [1_699_999_699, 1_700_000_301])
def test_telnyx_vector_outside_window_rejected(now: int) -> None:
    """The vector is rejected at ±301 s."""
    with pytest.raises(TimestampError):
        WebhookVerifier(VECTOR_KEY, clock=lambda: now).verify(VECTOR_BODY, VECTOR_HEADERS)


def test_telnyx_vector_tampered_body_rejected() -> None:
    """Changing one character of the vector body fails the signature check."""
    verifier = WebhookVerifier(VECTOR_KEY, clock=lambda: 1_700_000_000)
    with pytest.raises(InvalidSignatureError, match="does not match"):
        verifier.verify(VECTOR_BODY.replace(b'"hi"', b'"ho"'), VECTOR_HEADERS)


def test_telnyx_vector_wrong_key_rejected(private_key: Ed25519PrivateKey) -> None:
    """The vector does not verify under another public key."""
    verifier = WebhookVerifier(public_b64(private_key), clock=lambda: 1_700_000_000)
    with pytest.raises(InvalidSignatureError):
        verifier.verify(VECTOR_BODY, VECTOR_HEADERS)


# --- round trips and input types ---------------------------------------------------------------


def test_round_trip_fresh_keys() -> None:
    """sign -> unwrap works for several freshly generated keys."""
    for _ in range(5):
        key = Ed25519PrivateKey.generate()
        verifier = WebhookVerifier(public_b64(key), clock=lambda: NOW)
        body = event_body()
        event = verifier.unwrap(body, sign(key, body))
        assert event.id == "evt-1"


def test_body_input_types_are_equivalent(
    private_key: Ed25519PrivateKey, verifier: WebhookVerifier
) -> None:
    """bytes, bytearray, memoryview and str bodies give the same event."""
    body = event_body().replace(b'"hi"', '"h\u00e9 \u263a"'.encode())
    headers = sign(private_key, body)
    events = [
        verifier.unwrap(raw, headers)
        for raw in (body, bytearray(body), memoryview(body), body.decode("utf-8"))
    ]
    assert all(e == events[0] for e in events)
    assert isinstance(events[0].payload, Message)
    assert events[0].payload.text == "h\u00e9 \u263a"


def test_memoryview_slice_is_the_signed_bytes(
    private_key: Ed25519PrivateKey, verifier: WebhookVerifier
) -> None:
    """A memoryview over part of a buffer verifies exactly its own bytes."""
    body = event_body()
    buffer = b"xx" + body + b"yy"
    verifier.verify(memoryview(buffer)[2:-2], sign(private_key, body))


def test_non_utf8_signed_body_verifies_then_fails_as_payload(
    private_key: Ed25519PrivateKey, verifier: WebhookVerifier
) -> None:
    """A validly signed non-UTF-8 body passes verify(); unwrap() reports it is not UTF-8."""
    body = b'{"data": "\xff\xfe"}'
    headers = sign(private_key, body)
    verifier.verify(body, headers)
    with pytest.raises(WebhookPayloadError, match="not UTF-8"):
        verifier.unwrap(body, headers)


def test_surrogateescape_str_maps_back_to_signed_bytes(
    private_key: Ed25519PrivateKey, verifier: WebhookVerifier
) -> None:
    """A str decoded with surrogateescape verifies as its original bytes."""
    body = b"\xff\x00 not utf-8"
    verifier.verify(body.decode("utf-8", "surrogateescape"), sign(private_key, body))


def test_lone_surrogate_str_body_is_invalid_signature(
    private_key: Ed25519PrivateKey, verifier: WebhookVerifier
) -> None:
    """A str that cannot be encoded is reported as a signature failure, not UnicodeError."""
    with pytest.raises(InvalidSignatureError, match="surrogate"):
        verifier.verify("\ud800", sign(private_key, b"x"))


def test_body_of_wrong_type_is_type_error(verifier: WebhookVerifier) -> None:
    """A body that is not bytes-like or str is a programming error (TypeError)."""
    headers = sign(Ed25519PrivateKey.generate(), b"")
    bad_body: Any = 123
    with pytest.raises(TypeError, match="raw_body"):
        verifier.verify(bad_body, headers)


# --- strict parsing ----------------------------------------------------------------------------


def _sig(private_key: Ed25519PrivateKey, body: bytes) -> str:
    return sign(private_key, body)["telnyx-signature-ed25519"]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s[:10] + "!" + s[10:],  # junk char (lax decoders drop it)
        lambda s: s[:10] + " " + s[10:],  # whitespace inside
        lambda s: s + "\n",  # trailing newline
        lambda s: " " + s,  # leading space
        lambda s: s.rstrip("="),  # missing padding
        lambda s: s.replace("+", "-").replace("/", "_"),  # urlsafe alphabet
        lambda s: s[:-4] + ("AQ==" if s.endswith("AA==") else "AA=="),  # last byte changed
        lambda s: base64.b64encode(base64.b64decode(s) + b"\x00").decode(),  # 65 bytes
        lambda s: base64.b64encode(base64.b64decode(s)[:63]).decode(),  # 63 bytes
        lambda s: "",  # empty
        lambda s: "\u00e9" * 88,  # non-ASCII of the right length
    ],
)
def test_malformed_signature_rejected(
    private_key: Ed25519PrivateKey, verifier: WebhookVerifier, mangle: Any
) -> None:
    """Signatures that are not strict base64 of exactly 64 bytes are rejected."""
    # A random key's signature may lack what a mangler changes (no '+' or '/' for the
    # URL-safe one): sign other bodies until the mangled value really differs.
    for attempt in range(64):
        body = event_body(event_id=f"evt-{attempt}")
        headers = sign(private_key, body)
        original = headers["telnyx-signature-ed25519"]
        if mangle(original) != original:
            break
    headers["telnyx-signature-ed25519"] = mangle(original)
    assert headers["telnyx-signature-ed25519"] != original
    with pytest.raises(InvalidSignatureError):
        verifier.verify(body, headers)


def test_non_canonical_base64_signature_rejected(
    private_key: Ed25519PrivateKey, verifier: WebhookVerifier
) -> None:
    """Setting the unused low bits of the last base64 digit is rejected (one spelling only)."""
    body = event_body()
    headers = sign(private_key, body)
    sig = headers["telnyx-signature-ed25519"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(sig[85])
    headers["telnyx-signature-ed25519"] = sig[:85] + alphabet[last | 1] + "=="
    assert base64.b64decode(headers["telnyx-signature-ed25519"]) == base64.b64decode(sig)
    with pytest.raises(InvalidSignatureError, match="canonical"):
        verifier.verify(body, headers)


@pytest.mark.parametrize(
    "timestamp",
    [
        " 1700000000",
        "1700000000 ",
        "1_700_000_000",
        "+1700000000",
        "-1",
        "\u0661\u0667\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660",
        "1700000000.0",
        "",
        "1" * 13,
        "0x65",
        "1e9",
        "\uff11\uff17",
    ],
)
def test_malformed_timestamp_rejected(
    private_key: Ed25519PrivateKey, verifier: WebhookVerifier, timestamp: str
) -> None:
    """Timestamps must match ^[0-9]{1,12}$ (no spaces, underscores, signs, other digits)."""
    body = event_body()
    headers = sign(private_key, body)
    headers["telnyx-timestamp"] = timestamp
    with pytest.raises(TimestampError, match="ASCII digits"):
        verifier.verify(body, headers)


def test_leading_zero_timestamp_is_the_signed_text(private_key: Ed25519PrivateKey) -> None:
    """The header text is what is signed: "01700000000" verifies only with that exact text."""
    verifier = WebhookVerifier(public_b64(private_key), clock=lambda: NOW)
    body = event_body()
    verifier.verify(body, sign(private_key, body, "01700000000"))
    headers = sign(private_key, body, "01700000000")
    headers["telnyx-timestamp"] = "1700000000"
    with pytest.raises(InvalidSignatureError):
        verifier.verify(body, headers)


# --- timestamp window --------------------------------------------------------------------------


@pytest.mark.parametrize("skew", [-300, -299, 0, 299, 300])
def test_skew_within_tolerance_accepted(private_key: Ed25519PrivateKey, skew: int) -> None:
    """A timestamp up to 300 s in the past or future is accepted."""
    verifier = WebhookVerifier(public_b64(private_key), clock=lambda: NOW + skew)
    body = event_body()
    verifier.verify(body, sign(private_key, body))


@pytest.mark.parametrize(
    ("skew", "word"),
    [
        (301, "too old: 301 s ago"),
        (-301, "in the future: 301 s ahead"),
        (300.5, "too old: 300.5 s ago (tolerance 300 s)"),  # not "300 s ago (tolerance 300 s)"
        (300.0004, "too old: 300.0004 s ago (tolerance 300 s)"),
        (10**6, "too old: 1000000 s ago"),
    ],
)
def test_skew_beyond_tolerance_rejected(
    private_key: Ed25519PrivateKey, skew: float, word: str
) -> None:
    """A timestamp more than 300 s away, in either direction, is rejected and says which."""
    verifier = WebhookVerifier(public_b64(private_key), clock=lambda: NOW + skew)
    body = event_body()
    with pytest.raises(TimestampError, match=re.escape(word)):
        verifier.verify(body, sign(private_key, body))


def test_custom_tolerance(private_key: Ed25519PrivateKey) -> None:
    """tolerance=10 accepts ±10 s and rejects ±11 s."""
    body = event_body()
    headers = sign(private_key, body)
    for skew, ok in [(10, True), (-10, True), (11, False), (-11, False)]:
        verifier = WebhookVerifier(
            public_b64(private_key), tolerance=10, clock=FakeClock(NOW + skew)
        )
        if ok:
            verifier.verify(body, headers)
        else:
            with pytest.raises(TimestampError):
                verifier.verify(body, headers)


def test_zero_tolerance_needs_exact_second(private_key: Ed25519PrivateKey) -> None:
    """tolerance=0 accepts only the signing second."""
    body = event_body()
    headers = sign(private_key, body)
    WebhookVerifier(public_b64(private_key), tolerance=0, clock=lambda: NOW).verify(body, headers)
    with pytest.raises(TimestampError):
        WebhookVerifier(public_b64(private_key), tolerance=0, clock=lambda: NOW + 1).verify(
            body, headers
        )


def test_nan_clock_fails_closed(private_key: Ed25519PrivateKey) -> None:
    """A clock returning NaN rejects every timestamp instead of accepting them."""
    verifier = WebhookVerifier(public_b64(private_key), clock=lambda: float("nan"))
    body = event_body()
    with pytest.raises(TimestampError):
        verifier.verify(body, sign(private_key, body))


def test_default_clock_is_wall_time(private_key: Ed25519PrivateKey) -> None:
    """Without a clock, a delivery signed now verifies and one from an hour ago does not."""
    verifier = WebhookVerifier(public_b64(private_key))
    body = event_body()
    verifier.verify(body, sign(private_key, body, int(time.time())))
    with pytest.raises(TimestampError):
        verifier.verify(body, sign(private_key, body, int(time.time()) - 3600))


@pytest.mark.parametrize("tolerance", [-1, float("nan"), float("inf"), True])
def test_bad_tolerance_is_configuration_error(
    private_key: Ed25519PrivateKey, tolerance: float
) -> None:
    """Negative, NaN, infinite or boolean tolerances are refused at construction."""
    with pytest.raises(ConfigurationError, match="tolerance"):
        WebhookVerifier(public_b64(private_key), tolerance=tolerance)


# --- keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "",
        "not base64!",
        "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg",  # missing padding
        "A6EHv/POEL4dcN0Y50vAmWfk 1jCbpQ1fHdyGZBJVMbg=",  # inner space
        "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=",  # urlsafe alphabet
        "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbh=",  # non-canonical last digit
        base64.b64encode(b"\x01" * 31).decode(),
        base64.b64encode(b"\x01" * 33).decode(),
        b"\x01" * 31,
        b"\x01" * 64,
    ],
)
def test_bad_public_key_fails_at_construction(key: str | bytes) -> None:
    """Keys that are not strict base64 of 32 bytes (or 32 raw bytes) raise ConfigurationError."""
    with pytest.raises(ConfigurationError, match="public key"):
        WebhookVerifier(key)


def test_public_key_of_wrong_type_is_configuration_error() -> None:
    """A key that is neither str, bytes nor an Ed25519 key raises ConfigurationError."""
    bad_key: Any = 12345
    with pytest.raises(ConfigurationError, match="public key"):
        WebhookVerifier(bad_key)


def test_public_key_forms_are_equivalent(private_key: Ed25519PrivateKey) -> None:
    """Base64 str (with a trailing newline), the same text as bytes (``os.environb``, a key
    file read in binary: it was refused as "must be 32 bytes, got 44"), raw bytes, a PEM block
    and a key object verify."""
    public = private_key.public_key()
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    pem = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    body = event_body()
    headers = sign(private_key, body)
    # A .pem file read as bytes, and the base64 between a PEM block's lines (the DER key),
    # were refused as "must be 32 bytes, got 113" / "got 44".
    der_b64 = "".join(pem.strip().splitlines()[1:-1])
    forms = (public_b64(private_key) + "\n", raw, pem, "\n" + pem + "\n", public)
    text_bytes = (public_b64(private_key) + "\n").encode()
    for key in (*forms, pem.encode(), der_b64, text_bytes):
        WebhookVerifier(key, clock=lambda: NOW).verify(body, headers)
    other = Ed25519PrivateKey.generate().public_key()
    other_pem = other.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    with pytest.raises(InvalidSignatureError):
        WebhookVerifier(other_pem, clock=lambda: NOW).verify(body, headers)


def test_pem_key_that_is_not_ed25519_is_refused() -> None:
    """A PEM of another key type, or a broken PEM, is a ConfigurationError naming the problem."""
    from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

    ec_pem = (
        generate_private_key(SECP256R1())
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(ConfigurationError, match="must be an Ed25519 key"):
        WebhookVerifier(ec_pem)
    with pytest.raises(ConfigurationError, match="not a valid PEM"):
        WebhookVerifier("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


def test_configuration_error_is_value_error() -> None:
    """A bad key raises something callers can also catch as ValueError."""
    with pytest.raises(ValueError):
        WebhookVerifier("bad")


# --- small-order keys ----------------------------------------------------------------------------

# A small-order key A has 8*A = identity, so [S]B == R + [k]A holds for R = identity, S = 0 and
# any k: one constant signature verifies every body. A pure-Python decoder checks the refused
# list independently of the library (RFC 8032 §5.1.3, with y reduced mod p as OpenSSL does).
_P = 2**255 - 19
_D = -121665 * pow(121666, -1, _P) % _P
_IDENTITY = (0, 1)


def _decode_point(encoded: bytes) -> tuple[int, int]:
    n = int.from_bytes(encoded, "little")
    y = (n & (2**255 - 1)) % _P
    xx = (y * y - 1) * pow(_D * y * y + 1, -1, _P) % _P
    x = pow(xx, (_P + 3) // 8, _P)
    if (x * x - xx) % _P:
        x = x * pow(2, (_P - 1) // 4, _P) % _P
    assert (x * x - xx) % _P == 0, "not a curve point"
    if x & 1 != n >> 255:
        x = (_P - x) % _P
    return x, y


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    # Complete twisted Edwards addition for -x^2 + y^2 = 1 + d x^2 y^2.
    (x1, y1), (x2, y2) = a, b
    t = _D * x1 * x2 * y1 * y2 % _P
    return (
        (x1 * y2 + x2 * y1) * pow(1 + t, -1, _P) % _P,
        (y1 * y2 + x1 * x2) * pow(1 - t, -1, _P) % _P,
    )


def _times_8(point: tuple[int, int]) -> tuple[int, int]:
    for _ in range(3):
        point = _add(point, point)
    return point


_Y8 = 2707385501144840649318225287225658788936804267575313519463743609750303402022
SMALL_ORDER_KEYS = [
    (value | sign << 255).to_bytes(32, "little")
    for y in (0, 1, _P - 1, _Y8, _P - _Y8)
    for value in (y, y + _P)  # y + p: the non-canonical spelling, where it fits in 255 bits
    if value < 2**255
    for sign in (0, 1)
]


def test_refused_keys_are_exactly_the_8_torsion() -> None:
    """Every refused encoding decodes to a point P with 8P = identity, and together they are 8
    distinct points: all of the 8-torsion (the curve group is Z/8 x Z/L). A real key is not."""
    points = {_decode_point(encoded) for encoded in SMALL_ORDER_KEYS}
    assert len(points) == 8
    assert all(_times_8(point) == _IDENTITY for point in points)
    real = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert _times_8(_decode_point(real)) != _IDENTITY
    assert base64.b64encode(SMALL_ORDER_KEYS[4]) == b"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


@pytest.mark.parametrize("raw", SMALL_ORDER_KEYS, ids=lambda raw: raw.hex()[:8] + raw.hex()[-2:])
def test_small_order_public_key_fails_at_construction(raw: bytes) -> None:
    """A small-order key in every accepted form (base64, raw bytes, PEM, key object) raises
    ConfigurationError: with it a constant signature would verify any body."""
    public = Ed25519PublicKey.from_public_bytes(raw)
    pem = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    for key in (base64.b64encode(raw).decode(), raw, pem, public):
        with pytest.raises(ConfigurationError, match="small order"):
            WebhookVerifier(key)


def test_small_order_key_is_refused_on_every_construction_path(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """client.webhooks (webhook_public_key= or $TELNYX_PUBLIC_KEY) and `telnyx-msg webhook
    verify --public-key` refuse the identity key instead of accepting a forged delivery."""
    import telnyx_msg
    from telnyx_msg.cli import main

    identity = "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    forged = base64.b64encode(bytes([1]) + bytes(63)).decode()
    body = event_body()
    headers = {"telnyx-signature-ed25519": forged, "telnyx-timestamp": str(int(time.time()))}
    with (
        telnyx_msg.Client("k", webhook_public_key=identity) as client,
        pytest.raises(ConfigurationError, match="small order"),
    ):
        client.webhooks.unwrap(body, headers)
    monkeypatch.setenv("TELNYX_PUBLIC_KEY", identity)
    with (
        telnyx_msg.Client("k") as client,
        pytest.raises(ConfigurationError, match="small order"),
    ):
        client.webhooks.unwrap(body, headers)
    path = tmp_path / "body.json"
    path.write_bytes(body)
    args = ["webhook", "verify", str(path), "--public-key", identity]
    args += ["--timestamp", headers["telnyx-timestamp"], "--signature", forged]
    assert main(args) == 2
    assert "small order" in capsys.readouterr().err


# --- headers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "names",
    [
        ("telnyx-signature-ed25519", "telnyx-timestamp"),
        ("Telnyx-Signature-Ed25519", "Telnyx-Timestamp"),
        ("TELNYX-SIGNATURE-ED25519", "TELNYX-TIMESTAMP"),
        ("tElNyX-sIgNaTuRe-Ed25519", "tElNyX-TiMeStAmP"),
    ],
)
def test_header_names_are_case_insensitive(
    private_key: Ed25519PrivateKey, verifier: WebhookVerifier, names: tuple[str, str]
) -> None:
    """Any capitalisation of the header names in a plain dict works."""
    body = event_body()
    signed = sign(private_key, body)
    headers = {
        "Content-Type": "application/json",
        names[0]: signed["telnyx-signature-ed25519"],
        names[1]: signed["telnyx-timestamp"],
    }
    verifier.verify(body, headers)


def test_multidict_headers(private_key: Ed25519PrivateKey, verifier: WebhookVerifier) -> None:
    """aiohttp's CIMultiDictProxy works, and a repeated header in it is rejected."""
    body = event_body()
    signed = sign(private_key, body)
    headers = CIMultiDict(
        [
            ("Telnyx-Signature-Ed25519", signed["telnyx-signature-ed25519"]),
            ("Telnyx-Timestamp", signed["telnyx-timestamp"]),
        ]
    )
    verifier.verify(body, CIMultiDictProxy(headers))
    headers.add("telnyx-timestamp", signed["telnyx-timestamp"])
    with pytest.raises(MissingHeaderError, match="repeated"):
        verifier.verify(body, CIMultiDictProxy(headers))


def test_asgi_scope_headers_as_a_dict_of_bytes_verify(
    private_key: Ed25519PrivateKey, verifier: WebhookVerifier
) -> None:
    """``dict(scope["headers"])`` in an ASGI app (bytes names and values, lower case) verifies
    like the text form; a repeated header stays refused. Bytes values were accepted and bytes
    names were not: "missing required header", with both headers there."""
    body = event_body()
    signed = {k.encode(): v.encode() for k, v in sign(private_key, body).items()}
    assert verifier.unwrap(body, signed).id == "evt-1"
    twice = {**signed, b"Telnyx-Timestamp": signed[b"telnyx-timestamp"]}
    with pytest.raises(WebhookVerificationError, match="repeated"):
        verifier.unwrap(body, twice)


def test_a_wsgi_environ_instead_of_headers_says_what_to_pass(
    private_key: Ed25519PrivateKey, verifier: WebhookVerifier
) -> None:
    """Django's request.META (WSGI environ keys) in place of the headers: the error says to pass
    request.headers, instead of only that the signature header is missing."""
    body = event_body()
    signed = sign(private_key, body)
    environ = {
        "HTTP_TELNYX_SIGNATURE_ED25519": signed["telnyx-signature-ed25519"],
        "HTTP_TELNYX_TIMESTAMP": signed["telnyx-timestamp"],
        "REQUEST_METHOD": "POST",
    }
    with pytest.raises(MissingHeaderError, match=r"request\.headers, not request\.META"):
        verifier.verify(body, environ)


def test_getlist_headers(private_key: Ed25519PrivateKey, verifier: WebhookVerifier) -> None:
    """Starlette/Werkzeug-style headers (getlist) work; a repeated signature is rejected."""
    body = event_body()
    signed = sign(private_key, body)
    items = [
        ("telnyx-signature-ed25519", signed["telnyx-signature-ed25519"]),
        ("telnyx-timestamp", signed["telnyx-timestamp"]),
    ]
    verifier.verify(body, GetlistHeaders(items))
    with pytest.raises(MissingHeaderError, match="repeated"):
        verifier.verify(body, GetlistHeaders([*items, items[0]]))


def test_werkzeug_headers_as_flask_gives_them(
    private_key: Ed25519PrivateKey, verifier: WebhookVerifier
) -> None:
    """Flask's ``request.headers`` (Werkzeug's ``Headers``, not a ``Mapping``) is accepted as it
    is, at run time and by the type checker (this module is checked with ``mypy --strict``)."""
    from werkzeug.datastructures import Headers

    body = event_body()
    signed = sign(private_key, body)
    headers = Headers([("Content-Type", "application/json"), *signed.items()])
    assert verifier.unwrap(body, headers).id is not None
    headers.add("Telnyx-Timestamp", signed["telnyx-timestamp"])
    with pytest.raises(MissingHeaderError, match="repeated"):
        verifier.unwrap(body, headers)


def test_two_casings_in_plain_dict_count_as_repeated(
    private_key: Ed25519PrivateKey, verifier: WebhookVerifier
) -> None:
    """A plain dict holding the same header under two casings is a repeated header."""
    body = event_body()
    headers = sign(private_key, body)
    headers["Telnyx-Signature-Ed25519"] = headers["telnyx-signature-ed25519"]
    with pytest.raises(MissingHeaderError, match="repeated"):
        verifier.verify(body, headers)


@pytest.mark.parametrize("name", ["telnyx-signature-ed25519", "telnyx-timestamp"])
@pytest.mark.parametrize("separator", [", ", ","])
def test_a_header_joined_with_commas_counts_as_repeated(
    private_key: Ed25519PrivateKey, verifier: WebhookVerifier, name: str, separator: str
) -> None:
    """WSGI servers (gunicorn + Flask) join a repeated header's copies with commas; neither value
    can hold a comma, so this is the same MissingHeaderError ASGI and aiohttp give, not a bad
    signature or timestamp."""
    body = event_body()
    headers = sign(private_key, body)
    headers[name] = separator.join([headers[name]] * 2)
    with pytest.raises(MissingHeaderError, match=f"{name} is repeated"):
        verifier.verify(body, headers)
    environ = {f"HTTP_{key.upper().replace('-', '_')}": value for key, value in headers.items()}
    with pytest.raises(MissingHeaderError, match=f"{name} is repeated"):
        verifier.unwrap(body, headers_from_environ(environ))


def test_list_and_bytes_header_values(
    private_key: Ed25519PrivateKey, verifier: WebhookVerifier
) -> None:
    """One-element lists and bytes values are accepted; two-element lists are repeats."""
    body = event_body()
    signed = sign(private_key, body)
    headers: dict[str, Any] = {
        "telnyx-signature-ed25519": [signed["telnyx-signature-ed25519"]],
        "telnyx-timestamp": signed["telnyx-timestamp"].encode(),
    }
    verifier.verify(body, headers)
    headers["telnyx-timestamp"] = ["1", "2"]
    with pytest.raises(MissingHeaderError, match="repeated"):
        verifier.verify(body, headers)


def test_non_text_header_value_rejected(
    private_key: Ed25519PrivateKey, verifier: WebhookVerifier
) -> None:
    """A header value that is neither text, bytes nor a list raises MissingHeaderError."""
    body = event_body()
    headers: dict[str, Any] = {**sign(private_key, body), "telnyx-timestamp": NOW}
    with pytest.raises(MissingHeaderError, match="non-text"):
        verifier.verify(body, headers)


@pytest.mark.parametrize("missing", ["telnyx-signature-ed25519", "telnyx-timestamp"])
def test_missing_header_named(
    private_key: Ed25519PrivateKey, verifier: WebhookVerifier, missing: str
) -> None:
    """A missing header raises MissingHeaderError naming it."""
    body = event_body()
    headers = sign(private_key, body)
    del headers[missing]
    with pytest.raises(MissingHeaderError, match=missing):
        verifier.verify(body, headers)


def test_unreadable_headers_object(verifier: WebhookVerifier) -> None:
    """A headers object that is not a mapping raises MissingHeaderError, nothing foreign."""
    bad_headers: Any = None
    with pytest.raises(MissingHeaderError, match="could not read headers"):
        verifier.verify(b"{}", bad_headers)


def test_headers_from_environ(private_key: Ed25519PrivateKey, verifier: WebhookVerifier) -> None:
    """A WSGI environ (or Django request.META) gives usable lower-case headers."""
    body = event_body()
    signed = sign(private_key, body)
    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_TELNYX_SIGNATURE_ED25519": signed["telnyx-signature-ed25519"],
        "HTTP_TELNYX_TIMESTAMP": signed["telnyx-timestamp"],
        "HTTP_USER_AGENT": "telnyx",
        "wsgi.input": object(),
    }
    headers = headers_from_environ(environ)
    assert headers["telnyx-timestamp"] == signed["telnyx-timestamp"]
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "telnyx"
    assert "wsgi.input" not in headers
    assert "request-method" not in headers
    assert verifier.unwrap(body, headers).id == "evt-1"


def test_checks_run_in_documented_order(
    private_key: Ed25519PrivateKey, verifier: WebhookVerifier
) -> None:
    """Headers, then timestamp format, window, signature decode, verify, then payload."""
    body = b"not json"
    good = sign(private_key, body)
    bad_sig = "A" * 88
    cases: list[tuple[dict[str, str], type[WebhookVerificationError]]] = [
        ({"telnyx-timestamp": "x"}, MissingHeaderError),
        ({"telnyx-timestamp": "x", "telnyx-signature-ed25519": "!"}, TimestampError),
        ({"telnyx-timestamp": "1", "telnyx-signature-ed25519": "!"}, TimestampError),
        ({"telnyx-timestamp": str(NOW), "telnyx-signature-ed25519": "!"}, InvalidSignatureError),
        (
            {"telnyx-timestamp": str(NOW), "telnyx-signature-ed25519": bad_sig},
            InvalidSignatureError,
        ),
        (good, WebhookPayloadError),
    ]
    for headers, expected in cases:
        with pytest.raises(expected):
            verifier.unwrap(body, headers)


# --- payloads ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"", "not JSON"),
        (b"not json", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'"text"', "not an object"),
        (b"{}", "not a Telnyx webhook"),
        (b'{"data": 1}', "not a Telnyx webhook"),
        (b'{"data": {"event_type": "message.sent", "payload": 5}}', "not a Telnyx webhook"),
        (
            b'{"data": {"event_type": "message.sent", "occurred_at": "yesterday"}}',
            "not a Telnyx webhook",
        ),
        (b"\xef\xbb\xbf{}", "not JSON"),  # UTF-8 BOM
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),  # RecursionError
        (b"1" * 5000, "not JSON"),  # int() digit limit
    ],
)
def test_bad_payload_is_webhook_payload_error(
    private_key: Ed25519PrivateKey, verifier: WebhookVerifier, body: bytes, match: str
) -> None:
    """Signed bodies that are not webhook JSON objects raise WebhookPayloadError."""
    with pytest.raises(WebhookPayloadError, match=match):
        verifier.unwrap(body, sign(private_key, body))


def test_utf16_json_is_not_accepted(
    private_key: Ed25519PrivateKey, verifier: WebhookVerifier
) -> None:
    """JSON must be UTF-8: a UTF-16 body (which json.loads(bytes) would guess) is rejected."""
    body = '{"data": {}}'.encode("utf-16")
    with pytest.raises(WebhookPayloadError, match="UTF-8"):
        verifier.unwrap(body, sign(private_key, body))


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (event_body(event_id="ev\ud800"), "event id"),
        (event_body(message_id="msg\udfff"), "message id"),
        (event_body(event_type="message.\ud83d"), "event type"),
    ],
)
def test_an_id_that_is_not_utf8_is_payload_error(
    private_key: Ed25519PrivateKey, body: bytes, match: str
) -> None:
    """A signed body whose ids hold a lone surrogate escape (JSON "\\ud800") cannot name a Redis
    key or stream field: it is a WebhookPayloadError, with or without a replay store, instead of
    a UnicodeEncodeError from the store, the queue or a delivery tracker."""
    assert b"\\ud" in body
    for store in (None, MemoryReplayStore()):
        verifier = WebhookVerifier(public_b64(private_key), clock=lambda: NOW, replay_store=store)
        with pytest.raises(WebhookPayloadError, match=match):
            verifier.unwrap(body, sign(private_key, body))


@pytest.mark.parametrize("event_type", ["message.sent", "message.finalized", "message.received"])
def test_message_events_are_typed(
    private_key: Ed25519PrivateKey, verifier: WebhookVerifier, event_type: str
) -> None:
    """Delivery and inbound events carry a Message payload and a known event type."""
    body = event_body(event_type)
    event = verifier.unwrap(body, sign(private_key, body))
    assert event.event_type == event_type
    assert isinstance(event.event_type, WebhookEventType)
    assert isinstance(event.payload, Message)
    assert event.payload.id == "msg-1"


def test_link_click_event(private_key: Ed25519PrivateKey, verifier: WebhookVerifier) -> None:
    """A link click (no event_type/id on the wire) becomes message.link_click with LinkClick."""
    event = verifier.unwrap(LINK_CLICK_BODY, sign(private_key, LINK_CLICK_BODY))
    assert event.event_type == "message.link_click"
    assert event.id is None
    assert isinstance(event.payload, LinkClick)
    assert event.payload.message_id == "msg-9"


def test_unknown_event_type_keeps_raw_payload(
    private_key: Ed25519PrivateKey, verifier: WebhookVerifier
) -> None:
    """An unknown event type parses, with the raw payload mapping."""
    body = json.dumps(
        {"data": {"event_type": "call.initiated", "id": "c1", "payload": {"call_control_id": "x"}}}
    ).encode()
    event = verifier.unwrap(body, sign(private_key, body))
    assert event.event_type == "call.initiated"
    assert event.payload == {"call_control_id": "x"}


# --- replay protection -------------------------------------------------------------------------


def _replay_verifier(
    private_key: Ed25519PrivateKey, store: Any, *, tolerance: float = 300
) -> WebhookVerifier:
    return WebhookVerifier(
        public_b64(private_key), tolerance=tolerance, clock=lambda: NOW, replay_store=store
    )


def test_duplicate_event_rejected(private_key: Ed25519PrivateKey) -> None:
    """The same event id twice raises DuplicateWebhookError carrying the id."""
    verifier = _replay_verifier(private_key, MemoryReplayStore())
    body = event_body()
    headers = sign(private_key, body)
    verifier.unwrap(body, headers)
    with pytest.raises(DuplicateWebhookError) as info:
        verifier.unwrap(body, headers)
    assert info.value.event_id == "evt-1"
    assert isinstance(info.value, WebhookVerificationError)


def test_duplicate_with_new_timestamp_rejected(private_key: Ed25519PrivateKey) -> None:
    """A redelivery signed at another second is still a duplicate (keyed on data.id)."""
    verifier = _replay_verifier(private_key, MemoryReplayStore())
    body = event_body()
    verifier.unwrap(body, sign(private_key, body, NOW))
    with pytest.raises(DuplicateWebhookError):
        verifier.unwrap(body, sign(private_key, body, NOW - 5))


def test_distinct_events_pass(private_key: Ed25519PrivateKey) -> None:
    """Different event ids are all accepted."""
    verifier = _replay_verifier(private_key, MemoryReplayStore())
    for n in range(5):
        body = event_body(event_id=f"evt-{n}")
        verifier.unwrap(body, sign(private_key, body))


def test_link_clicks_not_deduplicated(private_key: Ed25519PrivateKey) -> None:
    """Events without an id (link clicks) are never reported as duplicates."""
    verifier = _replay_verifier(private_key, MemoryReplayStore())
    headers = sign(private_key, LINK_CLICK_BODY)
    verifier.unwrap(LINK_CLICK_BODY, headers)
    verifier.unwrap(LINK_CLICK_BODY, headers)


def test_replay_off_by_default(private_key: Ed25519PrivateKey, verifier: WebhookVerifier) -> None:
    """Without a replay store the same delivery can be unwrapped twice."""
    body = event_body()
    headers = sign(private_key, body)
    verifier.unwrap(body, headers)
    verifier.unwrap(body, headers)
    assert verifier.replay_store is None


def test_forged_delivery_does_not_mark_seen(private_key: Ed25519PrivateKey) -> None:
    """A rejected delivery never reaches the store, so the genuine one still passes."""
    store = MemoryReplayStore()
    verifier = _replay_verifier(private_key, store)
    body = event_body()
    forged = sign(Ed25519PrivateKey.generate(), body)
    with pytest.raises(InvalidSignatureError):
        verifier.unwrap(body, forged)
    assert len(store) == 0
    verifier.unwrap(body, sign(private_key, body))


def test_two_phase_mark_after_success(private_key: Ed25519PrivateKey) -> None:
    """mark_seen=False checks only; mark_seen() records; then the id is a duplicate."""
    verifier = _replay_verifier(private_key, MemoryReplayStore())
    body = event_body()
    headers = sign(private_key, body)
    event = verifier.unwrap(body, headers, mark_seen=False)
    verifier.unwrap(body, headers, mark_seen=False)  # handler failed: not marked, retry passes
    verifier.mark_seen(event)
    with pytest.raises(DuplicateWebhookError):
        verifier.unwrap(body, headers, mark_seen=False)


@pytest.mark.anyio
async def test_aunwrap_with_memory_store(private_key: Ed25519PrivateKey) -> None:
    """aunwrap uses the async methods of the memory store, including the two phases."""
    verifier = _replay_verifier(private_key, MemoryReplayStore())
    body = event_body()
    headers = sign(private_key, body)
    event = await verifier.aunwrap(body, headers, mark_seen=False)
    await verifier.amark_seen(event)
    with pytest.raises(DuplicateWebhookError):
        await verifier.aunwrap(body, headers)
    other = event_body(event_id="evt-2")
    await verifier.aunwrap(other, sign(private_key, other))
    with pytest.raises(DuplicateWebhookError):
        verifier.unwrap(other, sign(private_key, other))


class AsyncOnlyStore:
    """A minimal async-only replay store (like RedisReplayStore)."""

    def __init__(self) -> None:
        self.ids: dict[str, float] = {}

    async def aseen(self, event_id: str) -> bool:
        return event_id in self.ids

    async def amark(self, event_id: str, ttl: float) -> None:
        self.ids[event_id] = ttl

    async def amark_if_new(self, event_id: str, ttl: float) -> bool:
        if event_id in self.ids:
            return False
        self.ids[event_id] = ttl
        return True


def test_unwrap_with_async_only_store_says_use_aunwrap(private_key: Ed25519PrivateKey) -> None:
    """unwrap() with an async-only store raises ConfigurationError pointing to aunwrap."""
    verifier = _replay_verifier(private_key, AsyncOnlyStore())
    body = event_body()
    with pytest.raises(ConfigurationError, match="aunwrap"):
        verifier.unwrap(body, sign(private_key, body))
    event = WebhookVerifier(public_b64(private_key), clock=lambda: NOW).unwrap(
        body, sign(private_key, body)
    )
    with pytest.raises(ConfigurationError, match="amark_seen"):
        verifier.mark_seen(event)


@pytest.mark.anyio
async def test_aunwrap_with_async_only_store(private_key: Ed25519PrivateKey) -> None:
    """aunwrap works with a custom async store and passes the verifier's ttl."""
    store = AsyncOnlyStore()
    verifier = _replay_verifier(private_key, store, tolerance=60)
    body = event_body()
    headers = sign(private_key, body)
    await verifier.aunwrap(body, headers)
    assert store.ids == {"evt-1": 121}
    with pytest.raises(DuplicateWebhookError):
        await verifier.aunwrap(body, headers)


def test_store_protocols() -> None:
    """MemoryReplayStore is a sync store; the async-only example is not."""
    assert isinstance(MemoryReplayStore(), SyncReplayStore)
    assert not isinstance(AsyncOnlyStore(), SyncReplayStore)


def test_replay_ttl_is_twice_tolerance_plus_one(private_key: Ed25519PrivateKey) -> None:
    """The verifier asks stores to keep ids for 2 * tolerance + 1 seconds."""
    assert _replay_verifier(private_key, None).replay_ttl == 601
    assert _replay_verifier(private_key, None, tolerance=10).replay_ttl == 21


def test_memory_store_expires_ids() -> None:
    """An id is forgotten once its ttl has passed on the store's clock."""
    clock = FakeClock(1000.0)
    store = MemoryReplayStore(clock=clock)
    assert store.mark_if_new("a", 601)
    clock.now += 600.9
    assert store.seen("a")
    assert not store.mark_if_new("a", 601)
    clock.now += 0.2
    assert not store.seen("a")
    assert store.mark_if_new("a", 601)


def test_memory_store_own_ttl_overrides(private_key: Ed25519PrivateKey) -> None:
    """MemoryReplayStore(ttl=...) keeps ids for its own ttl, not the verifier's."""
    clock = FakeClock()
    store = MemoryReplayStore(ttl=86_400, clock=clock)
    verifier = _replay_verifier(private_key, store)
    body = event_body()
    verifier.unwrap(body, sign(private_key, body))
    clock.now += 3600
    with pytest.raises(DuplicateWebhookError):
        verifier.unwrap(body, sign(private_key, body))


def test_a_store_ttl_shorter_than_the_replay_window_is_refused(
    private_key: Ed25519PrivateKey,
) -> None:
    """A store ttl of 60 s with the default 300 s tolerance let a captured delivery be accepted
    again 61-600 s later (its id forgotten, its timestamp still in the window)."""
    with pytest.raises(ConfigurationError, match="ttl=60 s is shorter than the 601 s"):
        WebhookVerifier(public_b64(private_key), replay_store=MemoryReplayStore(ttl=60))
    WebhookVerifier(public_b64(private_key), replay_store=MemoryReplayStore(ttl=601))
    WebhookVerifier(public_b64(private_key), tolerance=10, replay_store=MemoryReplayStore(ttl=21))


def test_memory_store_mark_refreshes() -> None:
    """mark() on a known id restarts its ttl."""
    clock = FakeClock()
    store = MemoryReplayStore(clock=clock)
    store.mark("a", 10)
    clock.now = 8
    store.mark("a", 10)
    clock.now = 15
    assert store.seen("a")


def test_memory_store_evicts_oldest_when_full() -> None:
    """Past max_size the oldest ids are evicted first."""
    store = MemoryReplayStore(max_size=3, clock=FakeClock())
    for event_id in "abcd":
        assert store.mark_if_new(event_id, 100)
    assert len(store) == 3
    assert not store.seen("a")
    assert all(store.seen(x) for x in "bcd")


def test_memory_store_stays_bounded_under_100k_ids() -> None:
    """100,000 distinct ids into a 1,000-id store never exceed the bound."""
    store = MemoryReplayStore(max_size=1000)
    for n in range(100_000):
        store.mark_if_new(f"id-{n}", 601)
        assert len(store) <= 1000
    assert store.seen("id-99999")
    assert not store.seen("id-0")


def test_memory_store_stays_bounded_under_1m_ids() -> None:
    """1,000,000 distinct ids keep the default store at or below 100,000 entries."""
    store = MemoryReplayStore()
    peak = 0
    for n in range(1_000_000):
        store.mark_if_new(str(n), 601)
        peak = max(peak, len(store))
    assert peak <= 100_000
    assert len(store) == 100_000


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_size": 0}, "max_size"),
        ({"max_size": True}, "max_size"),
        ({"ttl": 0}, "ttl"),
        ({"ttl": float("nan")}, "ttl"),
    ],
)
def test_memory_store_rejects_bad_settings(kwargs: dict[str, Any], match: str) -> None:
    """Non-positive sizes and ttls are configuration errors."""
    with pytest.raises(ConfigurationError, match=match):
        MemoryReplayStore(**kwargs)


def test_memory_store_a_refreshed_id_is_evicted_as_the_newest() -> None:
    """mark() on a known id moves it to the back of the eviction order, as a new id: when the
    store is full the id marked longest ago goes first, not the one just refreshed (its old
    position would keep it at the front: a handled event evicted first, its redelivery
    accepted)."""
    clock = FakeClock()
    store = MemoryReplayStore(max_size=3, clock=clock)
    for event_id in "ab":
        store.mark(event_id, 100)
        clock.now += 1
    store.mark("a", 100)  # handled again: "a" is now the newest
    for event_id in "cd":
        clock.now += 1
        assert store.mark_if_new(event_id, 100)
    assert len(store) == 3
    assert not store.seen("b")
    assert all(store.seen(x) for x in "acd")


@pytest.mark.parametrize("event_id", [12345, 1.5, True, ["e1"], {"id": "e1"}])
def test_an_event_id_that_is_not_a_string_is_no_id(
    private_key: Ed25519PrivateKey, event_id: object
) -> None:
    """A signed event whose id is not a string parses with ``id=None`` (as a link click, never
    deduplicated): kept as is, it would fail inside the verifier with a bare
    AttributeError (``int.isascii``), which no receiver answers as a bad delivery."""
    verifier = _replay_verifier(private_key, MemoryReplayStore())
    body = json.dumps(
        {
            "data": {
                "event_type": "message.received",
                "id": event_id,
                "payload": {"id": "m1"},
            }
        }
    ).encode()
    for _ in range(2):
        event = verifier.unwrap(body, sign(private_key, body))
        assert event.id is None
        assert event.event_type is WebhookEventType.MESSAGE_RECEIVED


def test_a_link_click_in_the_event_envelope_keeps_its_payload(
    private_key: Ed25519PrivateKey, verifier: WebhookVerifier
) -> None:
    """Only the bare link-click record (no ``payload``) is read as a LinkClick from ``data``;
    a delivery in the usual envelope (event_type, id, payload) is read as any event: its id
    and its payload are kept, not replaced by a LinkClick of the envelope's empty fields."""
    payload = {
        "url": "https://example.com/x",
        "message_id": "msg-9",
        "to": "+18445550001",
    }
    body = json.dumps(
        {
            "data": {
                "record_type": "link_clicked",
                "event_type": "message.link_click",
                "id": "evt-7",
                "occurred_at": "2024-01-01T00:00:05.000+00:00",
                "payload": payload,
            }
        }
    ).encode()
    event = verifier.unwrap(body, sign(private_key, body))
    assert event.event_type is WebhookEventType.MESSAGE_LINK_CLICK
    assert event.id == "evt-7"
    assert event.payload == payload
    assert event.record_type == "link_clicked"


# --- WebhookEvent follows the model rules: extra and to_dict ---------------------------------

EXTENDED_DATA: dict[str, Any] = {
    "record_type": "event",
    "id": "evt-1",
    "event_type": "message.sent",
    "occurred_at": "2024-01-01T00:00:00+00:00",
    "added_later": {"x": 1},
    "payload": {
        "id": "msg-1",
        "to": [{"phone_number": "+18445550001", "status": "sent"}],
    },
}
EXTENDED_BODY = json.dumps({"data": EXTENDED_DATA, "meta": {"attempt": 1}}).encode()


def _check_extended(event: telnyx_msg.WebhookEvent) -> None:
    """An envelope field Telnyx adds later is on ``extra``; ``to_dict()`` gives ``data`` back,
    and the event pickles with both (a worker process handing it on)."""
    assert pickle.loads(pickle.dumps(event)) == event
    assert event.extra == {"added_later": {"x": 1}}
    shape = event.to_dict()
    assert shape["id"] == "evt-1"
    assert shape["event_type"] == "message.sent"
    assert shape["occurred_at"] == "2024-01-01T00:00:00+00:00"
    assert shape["added_later"] == {"x": 1}
    assert shape["payload"]["id"] == "msg-1"
    assert shape["payload"]["to"][0] == {"phone_number": "+18445550001", "status": "sent"}


def test_verifier_event_keeps_new_fields_and_gives_json_back() -> None:
    """``WebhookVerifier.unwrap`` returns an event with ``extra`` (an envelope field Telnyx
    adds later) and ``to_dict()`` (to store or forward the event), like every other model,
    instead of raising ``AttributeError``."""
    fake = FakeTelnyx()
    verifier = telnyx_msg.WebhookVerifier(fake.public_key)
    _check_extended(verifier.unwrap(EXTENDED_BODY, fake.sign_webhook(EXTENDED_BODY)))


@pytest.mark.anyio
async def test_async_client_event_has_extra_and_to_dict() -> None:
    """``AsyncClient.webhooks.unwrap`` / ``aunwrap``: the same model rules."""
    fake = FakeTelnyx()
    async with telnyx_msg.AsyncClient("test-key", webhook_public_key=fake.public_key) as client:
        _check_extended(client.webhooks.unwrap(EXTENDED_BODY, fake.sign_webhook(EXTENDED_BODY)))
        _check_extended(
            await client.webhooks.aunwrap(EXTENDED_BODY, fake.sign_webhook(EXTENDED_BODY))
        )


def test_blocking_client_event_has_extra_and_to_dict() -> None:
    """The blocking ``Client.webhooks.unwrap``: the same model rules."""
    with (
        serve_in_thread() as fake,
        telnyx_msg.Client(
            fake.api_key, base_url=fake.base_url, webhook_public_key=fake.public_key
        ) as client,
    ):
        _check_extended(client.webhooks.unwrap(EXTENDED_BODY, fake.sign_webhook(EXTENDED_BODY)))


def test_a_link_click_event_gives_its_click_back_as_telnyx_sent_it() -> None:
    """A link click has no envelope on the wire (no event_type, id or payload): its
    ``to_dict()`` must be the ``data`` object Telnyx sent (the click's own fields), not an
    invented envelope ``{"record_type", "event_type": "message.link_click", "payload": ...}``
    that a consumer reading the forwarded JSON as a Telnyx delivery would not recognise."""
    key = Ed25519PrivateKey.generate()
    verifier = WebhookVerifier(key.public_key(), clock=lambda: float(NOW))
    event = verifier.unwrap(LINK_CLICK_BODY, sign(key, LINK_CLICK_BODY))
    sent = json.loads(LINK_CLICK_BODY)["data"]
    back = event.to_dict()
    assert "event_type" not in back
    assert "payload" not in back
    assert back["url"] == sent["url"]
    assert back["message_id"] == sent["message_id"]
    assert back["record_type"] == "link_clicked"
