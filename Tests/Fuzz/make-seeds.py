#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora into DIR/<target>/: the SDP offers of Tests/Fixtures (and
/work/shared/fixtures when present), RFC 5769's STUN vectors (from Tests/STUNTests), and small valid
packets of each binary format built here from the RFCs' layouts.

    python3 Tests/Fuzz/make-seeds.py DIR
"""
import glob, os, re, struct, sys, zlib

repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
root = sys.argv[1]


def put(target, name, data):
    os.makedirs(os.path.join(root, target), exist_ok=True)
    with open(os.path.join(root, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# SDP offers from real browsers and GStreamer, and PATCH fragments.
for path in glob.glob(os.path.join(repo, "Tests/Fixtures/sdp/*.sdp")) + glob.glob("/work/shared/fixtures/sdp/*.sdp"):
    put("sdp", os.path.basename(path), open(path, "rb").read())
put("sdpfrag", "trickle", "a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\na=group:BUNDLE 0 1\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host\r\na=end-of-candidates\r\n")
put("sdpfrag", "restart", "a=ice-ufrag:new1\r\na=ice-pwd:newPasswordOf24Chars000\r\n")

# STUN: RFC 5769's three vectors as typed into the STUN tests.
vectors = open(os.path.join(repo, "Tests/STUNTests/RFC5769Vectors.swift")).read()
for name, body in re.findall(r"static let (\w+): \[UInt8\] = \[(.*?)\]", vectors, re.S):
    data = bytes(int(x, 16) for x in re.findall(r"0x([0-9a-fA-F]{2})", body))
    if len(data) > 20:
        put("stun", name, data)

# RTCP (RFC 3550, RFC 4585, draft-holmer-rmcat-transport-wide-cc-extensions-01) and RTP (RFC 3550, RFC 8285).
def rtcp(pt, count, body):
    return struct.pack("!BBH", 0x80 | count, pt, len(body) // 4) + body
rr = rtcp(201, 1, struct.pack("!I", 1) + struct.pack("!IIIIII", 2, 0x01000005, 100, 10, 0, 0))
sr = rtcp(200, 0, struct.pack("!IIIIII", 2, 0xe0000000, 0, 1000, 10, 1000))
sdes = rtcp(202, 1, struct.pack("!I", 1) + b"\x01\x05rtcam\x00\x00\x00\x00"[:8])
nack = rtcp(205, 1, struct.pack("!IIHH", 1, 2, 100, 0xffff))
pli = rtcp(206, 1, struct.pack("!II", 1, 2))
fir = rtcp(206, 4, struct.pack("!IIIB3x", 1, 0, 2, 7))
remb = rtcp(206, 15, struct.pack("!II", 1, 0) + b"REMB" + struct.pack("!BBH", 1, 0x0b, 0x1234) + struct.pack("!I", 2))
tcc = rtcp(205, 15, struct.pack("!IIHHIB", 1, 2, 10, 4, 0x00012301, 0)[:-1] + struct.pack("!B", 0)
           + struct.pack("!H", 0x2004) + bytes([4, 8, 12, 16]))
bye = rtcp(203, 1, struct.pack("!I", 2) + b"\x03bye")
for name, data in [("rr", rr + sdes), ("sr", sr), ("nack", rr + nack), ("pli", rr + pli), ("fir", fir),
                   ("remb", rr + remb), ("tcc", tcc), ("bye", rr + bye)]:
    put("rtp", "rtcp-" + name, data)
ext = struct.pack("!HH", 0xbede, 1) + bytes([0x10, 0xab, 0, 0])
put("rtp", "rtp-ext", struct.pack("!BBHII", 0x90, 96, 1, 3000, 1) + ext + b"\x65\x88\x84")
put("rtp", "rtp-padding", struct.pack("!BBHII", 0xa0, 111, 2, 960, 1) + b"opus\x00\x00\x03")

# H.264 runs (the h264 target's framing: a length byte before each RTP payload; the low bit of its
# first byte is the marker): a single NAL unit, STAP-A with SPS and PPS, FU-A start/middle/end.
sps = bytes([0x67, 0x42, 0xe0, 0x1f, 0x8c, 0x8d, 0x40])
pps = bytes([0x68, 0xce, 0x3c, 0x80])
stap = bytes([0x78]) + struct.pack("!H", len(sps)) + sps + struct.pack("!H", len(pps)) + pps
fu = [bytes([0x7c, 0x85]) + b"\x88" * 20, bytes([0x7c, 0x05]) + b"\x11" * 20, bytes([0x7c, 0x45]) + b"\x22" * 20]
def run(payloads):
    return b"".join(bytes([len(p)]) + p for p in payloads)
put("h264", "stap-fu", run([stap] + fu))
put("h264", "single", run([bytes([0x65]) + b"\x00" * 30, bytes([0x41, 0x9a]) + b"\x01" * 10]))

# DTLS: a ClientHello in two fragments (RFC 6347 §4.2.3), each a record in a datagram with a
# 2-byte length before it (the dtls target's framing), then a ChangeCipherSpec record.
hello = struct.pack("!H", 0xfefd) + b"\x00" * 32 + b"\x00" + b"\x00" + struct.pack("!H", 2) + b"\xc0\x2b" + b"\x01\x00"
def record(content, epoch, seq, payload):
    return struct.pack("!BHH", content, 0xfeff, epoch) + seq.to_bytes(6, "big") + struct.pack("!H", len(payload)) + payload
def hs(seq, offset, fragment, total):
    return bytes([1]) + total.to_bytes(3, "big") + struct.pack("!H", seq) + offset.to_bytes(3, "big") \
        + len(fragment).to_bytes(3, "big") + fragment
half = len(hello) // 2
datagrams = [record(22, 0, 0, hs(0, 0, hello[:half], len(hello))), record(22, 0, 1, hs(0, half, hello[half:], len(hello))),
             record(20, 0, 2, b"\x01")]
put("dtls", "fragmented-hello", b"".join(struct.pack("!H", len(d)) + d for d in datagrams))
whole = record(22, 0, 0, hs(0, 0, hello, len(hello)))
put("dtls", "whole-hello", struct.pack("!H", len(whole)) + whole)

# SCTP (RFC 9260): INIT, then a DATA chunk with DCEP's DATA_CHANNEL_OPEN (RFC 8832), each packet with
# a 2-byte length before it (the sctp target's framing; it fixes the CRC32c itself).
def sctp(tag, chunks):
    return struct.pack("!HHII", 5000, 5000, tag, 0) + b"".join(chunks)
def chunk(kind, flags, value):
    data = struct.pack("!BBH", kind, flags, 4 + len(value)) + value
    return data + b"\x00" * (-len(data) % 4)
init = chunk(1, 0, struct.pack("!IIHHI", 0x1234, 131072, 1024, 1024, 100) + struct.pack("!HH", 0xc000, 4))
dcep = bytes([3, 0]) + struct.pack("!HIHH", 0, 0, 4, 0) + b"chat"
data = chunk(0, 3, struct.pack("!IHHI", 100, 0, 0, 50) + dcep)
sack = chunk(3, 0, struct.pack("!IIHH", 99, 131072, 0, 0))
packets = [sctp(0, [init]), sctp(0x1234, [data]), sctp(0x1234, [sack])]
put("sctp", "init-data", b"".join(struct.pack("!H", len(p)) + p for p in packets))

# JSON: the settings page's bodies.
put("json", "settings", '{"media":{"video":"test-pattern","width":1280,"height":720,"framesPerSecond":30,"bitrateKbps":2500},"maximumViewers":4}')
put("json", "nested", '[1,-2.5e3,"a\\u00e9\\ud83d\\ude00",true,false,null,{"":[]}]')

# ICE-TCP (RFC 6544): the first byte sets the read cuts, then RFC 4571 frames (a 2-byte length each)
# of STUN Binding requests (RFC 5769's vectors) and one RTP packet.
stun_vectors = [open(os.path.join(root, "stun", name), "rb").read() for name in sorted(os.listdir(os.path.join(root, "stun")))]
rtp_packet = struct.pack("!BBHII", 0x80, 96, 7, 3000, 1) + b"\x65\x88\x84\x00"
put("icetcp", "checks-and-rtp", bytes([5]) + b"".join(struct.pack("!H", len(p)) + p for p in stun_vectors + [rtp_packet]))
put("icetcp", "one-byte-reads", bytes([0]) + b"".join(struct.pack("!H", len(p)) + p for p in stun_vectors[:1]))

# TURN (RFC 8656) from the server: a 2-byte length before each message (the target patches the
# client's transaction IDs in). A 401 with REALM and NONCE, an Allocate success (XOR-RELAYED-ADDRESS,
# XOR-MAPPED-ADDRESS, LIFETIME; no MESSAGE-INTEGRITY, which the client must refuse), a 438 with a new
# nonce, a Data indication (XOR-PEER-ADDRESS, DATA) and a ChannelData message.
def stun(kind, attributes):
    body = b"".join(struct.pack("!HH", t, len(v)) + v + b"\x00" * (-len(v) % 4) for t, v in attributes)
    return struct.pack("!HHI", kind, len(body), 0x2112A442) + b"\x00" * 12 + body
def xor_address(ip, port):
    return struct.pack("!BBH", 0, 1, port ^ 0x2112) + bytes(a ^ b for a, b in zip(bytes(ip), b"\x21\x12\xa4\x42"))
def error(code, reason):
    return struct.pack("!HBB", 0, code // 100, code % 100) + reason.encode()
unauthorized = stun(0x0113, [(0x0009, error(401, "Unauthorized")), (0x0014, b"example.org"), (0x0015, b"f1e2d3c4b5a69788")])
allocated = stun(0x0103, [(0x0016, xor_address([203, 0, 113, 1], 49152)), (0x0020, xor_address([198, 51, 100, 9], 40000)),
                          (0x000D, struct.pack("!I", 600))])
stale = stun(0x0113, [(0x0009, error(438, "Stale Nonce")), (0x0014, b"example.org"), (0x0015, b"0011223344556677")])
quota = stun(0x0113, [(0x0009, error(486, "Allocation Quota Reached"))])
indication = stun(0x0017, [(0x0012, xor_address([198, 51, 100, 2], 5000)), (0x0013, b"\x00\x01\x00\x00hello")])
channel_data = struct.pack("!HH", 0x4000, 5) + b"hello\x00\x00\x00"
put("turn", "allocate-401-success-data", b"".join(struct.pack("!H", len(m)) + m
                                                 for m in [unauthorized, allocated, stale, indication, channel_data]))
put("turn", "quota", struct.pack("!H", len(quota)) + quota)

# HTTP (the http target): raw HTTP/1.1 requests as the viewer and settings pages, WHEP players and
# scripts send them. "@SESSION@" and "@TOKEN@" become the target's live session cookie and viewing
# token; a first byte below 0x20 holds the target's flags (1 TLS, 2 HTTPS on, 4 no password yet).
def http(method, path, headers=(), body=b"", flags=None):
    if isinstance(body, str):
        body = body.encode()
    given = [h for h in headers if h.startswith("Host:")]
    lines = [f"{method} {path} HTTP/1.1"] + (given or ["Host: 192.168.1.20:8080"]) + [h for h in headers if not h.startswith("Host:")]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return (bytes([flags]) if flags is not None else b"") + head + body
owner = ["Cookie: theme=dark; rtcam_session=@SESSION@", "Origin: http://192.168.1.20:8080"]
as_json = ["Content-Type: application/json"]
offer = open(os.path.join(repo, "Tests/Fixtures/sdp/chromium-156-recvonly-offer.sdp"), "rb").read()
settings = ('{"source":"test-pattern","audio":"none","width":1280,"height":720,"fps":30,"bitrateKbps":2500,'
            '"maxViewers":4,"viewingRequiresPassword":true,"speakerVolume":80,"whoMayTalk":"owner"}')
for name, data in [
    ("viewer-page", http("GET", "/", ["Accept: text/html"])),
    ("settings-page-https", http("GET", "/settings", ["Host: camera.lan"], flags=2)),
    ("healthz", http("GET", "/healthz")),
    ("session", http("GET", "/api/session", owner)),
    ("login", http("POST", "/api/login", as_json + ["Origin: http://192.168.1.20:8080"], '{"password":"correct horse battery"}')),
    ("first-password", http("POST", "/api/password", as_json, '{"password":"a long one","setupCode":"ABCD-EFGH","viewingRequiresPassword":false}', flags=4)),
    ("change-password", http("POST", "/api/password", as_json + owner, '{"currentPassword":"correct horse battery","newPassword":"another long one"}')),
    ("config-get", http("GET", "/api/config", owner)),
    ("config-put", http("PUT", "/api/config", as_json + owner, settings)),
    ("config-put-traversal", http("PUT", "/api/config", as_json + owner,
                                  '{"stun":"stun.example.org:3478, 192.0.2.1:3478","turn":"turns:turn.example.org:5349?transport=tcp","turnUser":"u","turnPassword":"p","encoder":"x264","degradation":"balanced","intraRefresh":true,"echo":"off","speaker":"none"}')),
    ("status", http("GET", "/api/status", owner)),
    ("devices", http("GET", "/api/devices", owner)),
    ("tokens-list", http("GET", "/api/tokens", owner)),
    ("token-create", http("POST", "/api/tokens", as_json + owner, '{"name":"Home Assistant"}')),
    ("token-revoke", http("DELETE", "/api/tokens/0a1b2c3d4e5f", owner)),
    ("certificate", http("PUT", "/api/tls-certificate", as_json + owner,
                         '{"certificate":"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n","key":"-----BEGIN PRIVATE KEY-----\\nMC4C\\n-----END PRIVATE KEY-----\\n"}')),
    ("logout", http("POST", "/api/logout", owner)),
    ("whep-owner", http("POST", "/whep", ["Content-Type: application/sdp"] + owner, offer)),
    ("whep-token", http("POST", "/whep", ["Content-Type: application/sdp; charset=utf-8", "Authorization: Bearer @TOKEN@",
                                          "Origin: https://player.example.com"], offer)),
    ("whep-open", http("POST", "/whep", ["Content-Type: application/sdp"], offer, flags=4)),
    ("whep-preflight", http("OPTIONS", "/whep", ["Origin: https://player.example.com", "Access-Control-Request-Method: POST"])),
    ("whep-patch", http("PATCH", "/whep/3f2a9c", ["Content-Type: application/trickle-ice-sdpfrag", 'If-Match: "xyz"'],
                        "a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host\r\n")),
    ("whep-delete", http("DELETE", "/whep/3f2a9c")),
    ("talk", http("POST", "/whep/3f2a9c/talk", owner)),
    ("snapshot-token", http("GET", "/snapshot.jpg?width=640&token=@TOKEN@")),
    ("mjpeg", http("GET", "/stream.mjpg?fps=5&width=320", ["Authorization: Bearer @TOKEN@"])),
    ("metrics", http("GET", "/metrics", ["Cookie: rtcam_session=@SESSION@"])),
    ("rebinding", http("POST", "/api/login", as_json + ["Host: attacker.example", "Origin: http://attacker.example"], '{"password":"x"}')),
    ("ipv6-host-tls", http("GET", "/api/session", ["Host: [fe80::1%25eth0]:8443", "Cookie: rtcam_session=@SESSION@"], flags=3)),
]:
    put("http", name, data)
