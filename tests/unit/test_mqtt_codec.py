"""The wire tap's MQTT 3.1.1 decoder: every packet type, chunking, garbage, truncation.

Packets are built here by a small independent encoder (from the MQTT 3.1.1 spec), and
hypothesis checks that any chunking decodes the same and that no input crashes or hangs.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.broker.mqtt_codec import DecodeProblem, MqttPacket, StreamDecoder

pytestmark = pytest.mark.unit


# --- a minimal encoder, written from the spec, for building test input ---------------
def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        digit, n = n % 128, n // 128
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def _bin(raw: bytes) -> bytes:
    return len(raw).to_bytes(2, "big") + raw


def frame(type_code: int, flags: int, body: bytes) -> bytes:
    return bytes([type_code << 4 | flags]) + _length(len(body)) + body


def connect(
    client_id: str,
    *,
    username: str | None = None,
    password: bytes | None = None,
    keepalive: int = 60,
    clean: bool = True,
    will: tuple[str, bytes, int, bool] | None = None,
) -> bytes:
    flags = (0x02 if clean else 0) | (0x80 if username is not None else 0)
    flags |= 0x40 if password is not None else 0
    payload = _str(client_id)
    if will is not None:
        topic, message, qos, retain = will
        flags |= 0x04 | qos << 3 | (0x20 if retain else 0)
        payload += _str(topic) + _bin(message)
    if username is not None:
        payload += _str(username)
    if password is not None:
        payload += _bin(password)
    body = _str("MQTT") + bytes([4, flags]) + keepalive.to_bytes(2, "big") + payload
    return frame(1, 0, body)


def publish(topic: str, payload: bytes, qos: int = 0, retain: bool = False, dup: bool = False,
            packet_id: int = 1) -> bytes:  # fmt: skip
    flags = (0x08 if dup else 0) | qos << 1 | (0x01 if retain else 0)
    body = _str(topic) + (packet_id.to_bytes(2, "big") if qos else b"") + payload
    return frame(3, flags, body)


def subscribe(packet_id: int, filters: list[tuple[str, int]]) -> bytes:
    body = packet_id.to_bytes(2, "big") + b"".join(_str(f) + bytes([q]) for f, q in filters)
    return frame(8, 0b0010, body)


def decode_all(data: bytes, cuts: list[int] | None = None) -> list[MqttPacket | DecodeProblem]:
    decoder = StreamDecoder()
    results: list[MqttPacket | DecodeProblem] = []
    start = 0
    for cut in [*sorted(cuts or []), len(data)]:
        results += decoder.feed(data[start:cut])
        start = max(start, cut)
    tail = decoder.close()
    return results + ([tail] if tail else [])


# --- every packet type ------------------------------------------------------------------
def test_connect_fields_are_decoded_and_the_password_is_not_kept() -> None:
    data = connect("micropython-client-7", username="emqx", password=b"s3cret-pw", keepalive=30,
                   will=("status", b"gone", 1, True))  # fmt: skip
    [packet] = decode_all(data)
    assert isinstance(packet, MqttPacket) and packet.type == "CONNECT"
    f = packet.fields
    assert (f["protocol_name"], f["protocol_level"], f["client_id"]) == (
        "MQTT",
        4,
        "micropython-client-7",
    )
    assert (f["username"], f["password_present"], f["password_length"]) == ("emqx", True, 9)
    assert (f["clean_session"], f["keepalive"]) == (True, 30)
    assert (f["will_flag"], f["will_topic"], f["will_message"]) == (True, "status", b"gone")
    assert (f["will_qos"], f["will_retain"]) == (1, True)
    assert "s3cret-pw" not in repr(packet)


def test_connect_without_credentials_or_will() -> None:
    [packet] = decode_all(connect("c", clean=False, keepalive=0))
    assert isinstance(packet, MqttPacket)
    assert packet.fields["username"] is None and packet.fields["password_present"] is False
    assert packet.fields["clean_session"] is False and packet.fields["keepalive"] == 0
    assert packet.fields["will_topic"] is None


@pytest.mark.parametrize(
    ("code", "text"), [(0, "accepted"), (5, "not authorized"), (4, "bad user name or password")]
)
def test_connack_return_codes(code: int, text: str) -> None:
    [packet] = decode_all(frame(2, 0, bytes([0, code])))
    assert isinstance(packet, MqttPacket)
    assert packet.fields == {"session_present": False, "return_code": code, "return_text": text}


def test_publish_qos0_and_qos1_flags() -> None:
    packets = decode_all(
        publish("a/b", b'{"msg": 0}')
        + publish("a/b", b"x", qos=1, retain=True, dup=True, packet_id=9)
    )
    assert [p.fields for p in packets if isinstance(p, MqttPacket)] == [
        {
            "topic": "a/b",
            "qos": 0,
            "retain": False,
            "dup": False,
            "packet_id": None,
            "payload": b'{"msg": 0}',
        },
        {"topic": "a/b", "qos": 1, "retain": True, "dup": True, "packet_id": 9, "payload": b"x"},
    ]


def test_subscribe_suback_unsubscribe_and_empty_packets() -> None:
    data = (
        subscribe(3, [("t/#", 0), ("u", 1)])
        + frame(9, 0, b"\x00\x03\x00\x80")
        + frame(10, 0b0010, b"\x00\x04" + _str("t/#"))
        + frame(11, 0, b"\x00\x04")
        + frame(4, 0, b"\x00\x09")
        + frame(12, 0, b"") + frame(13, 0, b"") + frame(14, 0, b"")
    )  # fmt: skip
    packets = [p for p in decode_all(data) if isinstance(p, MqttPacket)]
    assert [p.type for p in packets] == [
        "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK",
        "PUBACK", "PINGREQ", "PINGRESP", "DISCONNECT",
    ]  # fmt: skip
    assert packets[0].fields == {
        "packet_id": 3,
        "topics": [{"filter": "t/#", "qos": 0}, {"filter": "u", "qos": 1}],
    }
    assert packets[1].fields == {"packet_id": 3, "return_codes": [0, 0x80]}
    assert packets[2].fields == {"packet_id": 4, "topics": ["t/#"]}


def test_large_remaining_length_spanning_several_bytes() -> None:
    payload = bytes(range(256)) * 80  # 20 480 bytes: a 3-byte remaining length
    [packet] = decode_all(publish("big", payload))
    assert isinstance(packet, MqttPacket) and packet.fields["payload"] == payload


# --- damage -------------------------------------------------------------------------
def test_truncated_stream_is_reported_at_close() -> None:
    results = decode_all(publish("t", b"hello")[:-2])
    assert len(results) == 1 and isinstance(results[0], DecodeProblem)
    assert "closed inside a packet" in results[0].reason


def test_malformed_body_is_reported_and_the_next_packet_still_decodes() -> None:
    bad_connect = frame(
        1, 0, _str("MQTT") + bytes([4, 0x02, 0, 60]) + b"\x00\x09ab"
    )  # id too short
    results = decode_all(bad_connect + frame(12, 0, b""))
    assert isinstance(results[0], DecodeProblem) and "malformed CONNECT" in results[0].reason
    assert isinstance(results[1], MqttPacket) and results[1].type == "PINGREQ"


def test_invalid_header_desynchronizes_and_counts_the_rest() -> None:
    decoder = StreamDecoder()
    results = decoder.feed(frame(12, 0, b"") + b"\x00garbage")
    assert isinstance(results[0], MqttPacket)
    assert isinstance(results[1], DecodeProblem) and "invalid packet type 0" in results[1].reason
    assert decoder.desynchronized and decoder.feed(frame(12, 0, b"")) == []
    assert decoder.skipped_bytes == len(b"\x00garbage") + 2
    assert decoder.close() is None


def test_wrong_fixed_header_flags_and_overlong_length() -> None:
    [flags_problem] = decode_all(b"\x83\x02\x00\x01")  # SUBSCRIBE must have flags 0b0010
    assert isinstance(flags_problem, DecodeProblem) and "flags" in flags_problem.reason
    [length_problem] = decode_all(b"\x30\xff\xff\xff\xff\x01")
    assert (
        isinstance(length_problem, DecodeProblem) and "longer than 4 bytes" in length_problem.reason
    )
    [qos3] = decode_all(b"\x36\x03\x00\x01a")
    assert isinstance(qos3, DecodeProblem) and "QoS 3" in qos3.reason


def test_size_limit_refuses_a_huge_declared_length_without_waiting_for_it() -> None:
    decoder = StreamDecoder(max_packet_size=1024)
    [problem] = decoder.feed(b"\x30\xff\xff\x7f")  # declares ~2 MB
    assert isinstance(problem, DecodeProblem) and "exceeds the limit" in problem.reason


# --- properties ---------------------------------------------------------------------
topics = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    min_size=1,
    max_size=30,
)


def _connect_of(cid: str, user: str | None, pw: bytes | None, keepalive: int) -> bytes:
    return connect(cid, username=user, password=pw, keepalive=keepalive)


small_ints, flags = st.integers(1, 65535), st.booleans()
valid_packets = st.one_of(
    st.builds(publish, topics, st.binary(max_size=300), st.integers(0, 2), flags, flags,
              small_ints),
    st.builds(_connect_of, topics, st.none() | topics, st.none() | st.binary(max_size=40),
              st.integers(0, 65535)),
    st.builds(subscribe, small_ints,
              st.lists(st.tuples(topics, st.integers(0, 2)), min_size=1, max_size=4)),
    st.sampled_from([frame(12, 0, b""), frame(13, 0, b""), frame(14, 0, b""),
                     frame(2, 0, b"\x00\x05")]),
)  # fmt: skip


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(valid_packets, min_size=1, max_size=8), st.lists(st.integers(0, 4000), max_size=12))
def test_any_chunking_of_valid_packets_decodes_every_packet_identically(
    packets: list[bytes], cuts: list[int]
) -> None:
    whole = decode_all(b"".join(packets))
    chunked = decode_all(b"".join(packets), [c % (len(b"".join(packets)) + 1) for c in cuts])
    assert all(isinstance(p, MqttPacket) for p in whole)
    assert len(whole) == len(packets)
    assert chunked == whole
    assert sum(p.size for p in whole if isinstance(p, MqttPacket)) == len(b"".join(packets))


@settings(max_examples=500, deadline=2000)
@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=20))
def test_garbage_never_raises_or_hangs(data: bytes, cuts: list[int]) -> None:
    results = decode_all(data, [c % (len(data) + 1) for c in cuts])
    assert all(isinstance(r, MqttPacket | DecodeProblem) for r in results)


@settings(max_examples=200, deadline=2000)
@given(st.lists(valid_packets, min_size=1, max_size=4), st.binary(min_size=1, max_size=50))
def test_valid_packets_before_garbage_are_all_kept(packets: list[bytes], garbage: bytes) -> None:
    results = decode_all(b"".join(packets) + garbage)
    decoded = [r for r in results if isinstance(r, MqttPacket)]
    assert decode_all(b"".join(packets)) == decoded[: len(packets)]


def test_byte_by_byte_feeding_of_a_big_packet_is_linear() -> None:
    data = publish("big", b"x" * 200_000)
    decoder = StreamDecoder()
    results: list[MqttPacket | DecodeProblem] = []
    for index in range(len(data)):
        results += decoder.feed(data[index : index + 1])
    assert len(results) == 1 and isinstance(results[0], MqttPacket)
