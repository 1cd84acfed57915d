# The board's `socket` (and `usocket`): the unix port's real sockets, plus what the
# ESP32's lwIP stack does differently here: names resolve through the harness's host map
# (unknown names fail with OSError(-202) like on an ESP32), and nothing gets through while
# Wi-Fi is down. Runs ON the MicroPython interpreter.
import errno
import io
import select

import _board
import network

_real = _board.real["socket"]

for _name in dir(_real):
    if not _name.startswith("__") and _name not in ("socket", "getaddrinfo"):
        globals()[_name] = getattr(_real, _name)

# lwIP (newlib) errno values an ESP32 reports for a lost link / no route.
ECONNABORTED = 113
EHOSTUNREACH = 118
EAI_FAIL = -202
_POLLIN = select.POLLIN
_CONTROL_SLICE_MS = 50
_POLLOUT = select.POLLOUT


def _is_ipv4(host):
    parts = host.split(".")
    if len(parts) != 4:
        return False
    for part in parts:
        if not part.isdigit() or int(part) > 255:
            return False
    return True


def resolve(host):
    # The IPv4 address the board's DNS gives for host, or the ESP32's errors.
    if isinstance(host, bytes):
        host = host.decode()
    up = network.station().link_up()
    if _is_ipv4(host):
        if not up:
            raise OSError(EHOSTUNREACH)  # lwIP parses it, but there is no route
        return host
    mapped = _board.hosts().get(host)
    if mapped is None or not up:
        raise OSError(EAI_FAIL)
    return mapped


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    # The rig's well-known UDP services (NTP on 123) listen on unprivileged ports of the
    # same host; the board's network delivers there (harness: EmulatedBoard.set_udp_ports).
    port = (_board.config.get("udp_ports") or {}).get(str(port), port)
    return _real.getaddrinfo(resolve(host), port, af, type, proto, flags)


def check_link(code=ECONNABORTED):
    if not network.station().link_up():
        raise OSError(code)


def socket(af=AF_INET, type=SOCK_STREAM, proto=0):  # noqa: A002 -- the socket API names
    # The unix port's own socket, untouched, unless the scenario will drop the link: then
    # a guard that fails like lwIP once it is gone (TLS reads through it too).
    sock = _real.socket(af, type, proto)
    if type == SOCK_DGRAM:
        return _Datagram(sock)
    station = network.station()
    if station.ms_until_drop() is None and not station.controlled():
        return sock
    return _LinkGuardedSocket(sock)


class _LinkGuardedSocket(io.IOBase):
    def __init__(self, sock):
        self._sock = sock
        self._timeout_ms = None  # None blocking, 0 non-blocking, else a timeout
        self._ip = None  # the board's address when connected
        # Under TLS the stream methods are called by mbedTLS and report errors as negative
        # errno; called directly (plain MQTT) they must raise, as lwIP's socket does.
        self.in_tls = False

    def _lost(self):
        # The link is down, or came back with another address: lwIP aborts the
        # connections bound to the old one (tcp_netif_ip_addr_changed).
        wlan = network.station()
        if not wlan.link_up():
            return True
        return self._ip is not None and wlan.ifconfig()[0] != self._ip

    def _wait(self, events):
        # Block like the real call would, but wake up when the link drops.
        wlan = network.station()
        poller = select.poll()
        poller.register(self._sock, events)
        left = self._timeout_ms
        while True:
            if self._lost():
                return -ECONNABORTED
            until_drop = wlan.ms_until_drop()
            wait = until_drop + 1 if until_drop is not None else -1
            if wlan.controlled():  # a drop can come at any time: look again soon
                wait = _CONTROL_SLICE_MS if wait < 0 else min(wait, _CONTROL_SLICE_MS)
            if left is not None:
                wait = left if wait < 0 else min(wait, left)
            if poller.poll(wait):
                return 0
            if left is not None:
                left -= wait
                if left <= 0 and wlan.link_up():
                    return -110  # ETIMEDOUT

    # stream protocol (used by TLS and select.poll)
    def readinto(self, buf, n=-1):
        error = self._wait(select.POLLIN) if self._timeout_ms != 0 else (
            -ECONNABORTED if self._lost() else 0)
        if error:
            return error
        got = self._sock.readinto(buf) if n < 0 else self._sock.readinto(buf, n)
        return got

    def write(self, data, *args):
        if self._lost():
            if not self.in_tls:
                raise OSError(ECONNABORTED)
            return -ECONNABORTED
        return self._sock.write(data, *args)

    def ioctl(self, request, arg):
        if request == 3:  # MP_STREAM_POLL
            poller = select.poll()
            poller.register(self._sock, arg)
            ready = poller.poll(0)
            flags = ready[0][1] if ready else 0
            if self._lost():
                flags |= select.POLLERR
            return flags
        if request == 4:  # MP_STREAM_CLOSE
            self._sock.close()
        if request == 10:  # MP_STREAM_GET_FILENO: the unix port's poll() waits on the fd
            return self._sock.fileno()
        return 0

    # socket methods
    def _check(self, value):
        if isinstance(value, int) and value < 0:
            raise OSError(-value)
        return value

    def read(self, n=-1):
        buf = bytearray(n if n > 0 else 1024)
        got = self._check(self.readinto(buf))
        if got is None:
            return None
        return bytes(buf[:got])

    recv = read

    def readline(self):
        line = b""
        while not line.endswith(b"\n"):
            chunk = self.read(1)
            if not chunk:
                break
            line += chunk
        return line

    def send(self, data):
        return self._check(self.write(data))

    def sendall(self, data):
        view = memoryview(data)
        while view:
            view = view[self.send(view):]

    def connect(self, address):
        check_link(EHOSTUNREACH)
        self._sock.connect(address)
        self._ip = network.station().ifconfig()[0]

    def setblocking(self, flag):
        self._timeout_ms = None if flag else 0
        self._sock.setblocking(flag)

    def settimeout(self, value):
        self._timeout_ms = None if value is None else int(value * 1000)
        self._sock.settimeout(value)

    def setsockopt(self, *args):
        self._sock.setsockopt(*args)

    def close(self):
        self._sock.close()

    def fileno(self):
        return self._sock.fileno()

    def __getattr__(self, name):
        return getattr(self._sock, name)


class _Datagram:
    # A UDP socket as lwIP's: nothing leaves while the link is down, and a receive whose
    # timeout runs out raises ETIMEDOUT (ports/esp32/modsocket.c), not the unix EAGAIN.
    def __init__(self, sock):
        self._sock = sock
        self._timed = False

    def settimeout(self, value):
        self._timed = bool(value)
        self._sock.settimeout(value)

    def _call(self, method, *args):
        try:
            return method(*args)
        except OSError as exc:
            if self._timed and exc.args and exc.args[0] == errno.EAGAIN:
                raise OSError(errno.ETIMEDOUT)
            raise

    def sendto(self, data, address):
        check_link(EHOSTUNREACH)
        return self._sock.sendto(data, address)

    def recv(self, n):
        return self._call(self._sock.recv, n)

    def recvfrom(self, n):
        return self._call(self._sock.recvfrom, n)

    def __getattr__(self, name):
        return getattr(self._sock, name)
