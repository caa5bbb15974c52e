import socket, struct, sys, time
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 2)
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
for seq in (1, 2):
    h = struct.pack("!BBHHH", 8, 0, 0, 0x4242, seq) + b"abcdefgh"
    h = h[:2] + struct.pack("!H", csum(h)) + h[4:]
    s.sendto(h, ("127.0.0.1", 0)); time.sleep(0.2)
