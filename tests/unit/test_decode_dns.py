import struct

from hypothesis import given, settings, strategies as st

from undertow.tools.decode.dns import decode_message, decode_tcp_stream, looks_like_dns, read_name


def qname(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def query(name="example.com", qtype=1, qid=0x1234):
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname(name) + struct.pack("!HH", qtype, 1)


def response():
    q = query("www.example.com", 1, 7)
    hdr = struct.pack("!HHHHHH", 7, 0x8180, 1, 3, 0, 0)
    body = q[12:]
    # answer 1: CNAME via pointer to the question name (offset 12)
    a1 = b"\xc0\x0c" + struct.pack("!HHIH", 5, 1, 60, 6) + b"\x03cdn\xc0\x10"
    a2 = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([127, 0, 0, 9])
    a3 = b"\xc0\x0c" + struct.pack("!HHIH", 16, 1, 60, 6) + b"\x05hello"
    return hdr + body + a1 + a2 + a3


def test_query():
    m = decode_message(query("miner.pool.example", 28))
    assert (m.id, m.is_response, m.opcode, m.error, m.truncated) == (0x1234, False, "QUERY", None, False)
    (q,) = m.questions
    assert (q.name, q.type_name, q.class_name) == ("miner.pool.example.", "AAAA", "IN")


def test_response_with_compression():
    m = decode_message(response())
    assert m.is_response and m.rcode == "NOERROR"
    assert [(a.type_name, a.data) for a in m.answers] == [
        ("CNAME", "cdn.example.com."), ("A", "127.0.0.9"), ("TXT", ["hello"])]


def test_truncated_everywhere_never_raises():
    data = response()
    for i in range(len(data)):
        m = decode_message(data[:i])
        assert m.raw == data[:i]
        if i < len(data):
            assert m.truncated or m.error or len(m.answers) < 3


def test_pointer_loop_and_escapes():
    data = struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c"
    m = decode_message(data)
    assert m.error == "compression pointer loop" and not m.truncated
    name, _ = read_name(b"\x03a.b\x02\x1b[\x00", 0)
    assert name == "a\\.b.\\027[."


def test_tcp_framing():
    q = query()
    msgs = decode_tcp_stream(struct.pack("!H", len(q)) + q + struct.pack("!H", 50) + q[:10])
    assert msgs[0].questions[0].name == "example.com." and msgs[1].truncated
    assert looks_like_dns(q) and not looks_like_dns(b"GET / HTTP/1.1\r\n\r\n")


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_random_bytes(data):
    decode_message(data)
    decode_tcp_stream(data)
    looks_like_dns(data)
