# `ntptime` as frozen into the ESP32 firmware v1.20-v1.22 (micropython-lib's
# micropython/net/ntptime, required by bundle-networking in ports/esp32/boards/manifest.py).
# It is not published on the package index, so the board's copy is written here from its
# documented behaviour: an SNTP (version 3, client mode) query to `host` on UDP port 123,
# `timeout` seconds to answer, the transmit timestamp's seconds as the board's time, and
# settime() setting the RTC in UTC. Runs ON the MicroPython interpreter.
import socket
import struct

from time import gmtime

host = "pool.ntp.org"  # the module's default; programs set ntptime.host
timeout = 1  # seconds

_NTP_TO_2000 = 3155673600  # seconds from 1900-01-01 (NTP era 0) to 2000-01-01


def time():
    query = bytearray(48)
    query[0] = 0x1B  # leap 0, version 3, mode 3 (client)
    addr = socket.getaddrinfo(host, 123)[0][-1]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.settimeout(timeout)
        sock.sendto(query, addr)
        reply = sock.recv(48)
    finally:
        sock.close()
    return struct.unpack("!I", reply[40:44])[0] - _NTP_TO_2000


def settime():
    tm = gmtime(time())
    import machine

    machine.RTC().datetime((tm[0], tm[1], tm[2], tm[6] + 1, tm[3], tm[4], tm[5], 0))
