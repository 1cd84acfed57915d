# MQTT client construction over TCP or TLS, for every umqtt.simple generation, and the
# one-line error messages for connection failures.
#
# umqtt.simple's TLS API changed twice (see docs/settings.md):
#   1.3.x (firmware v1.20-v1.22): ssl=True, ssl_params -> ussl.wrap_socket(**ssl_params);
#          SNI only if ssl_params has server_hostname.
#   1.4.x (v1.23-v1.24): ssl=<SSLContext>, no ssl_params; SNI = server, always.
#   1.6+  (v1.25+): both; ssl=True is the 1.3 path, an SSLContext the 1.4 path.
# We detect the generation by what the constructor accepts, never by a version string.

import errno
import socket
import ssl

from umqtt.simple import MQTTClient, MQTTException

PARAMS = "ssl_params"  # 1.3.x: only ssl=True + ssl_params
CONTEXT = "context"  # 1.4.x: only ssl=<SSLContext>
BOTH = "both"  # 1.6+: either form

CONNACK_REASONS = {
    1: "broker refused the protocol version",
    2: "client id rejected",
    3: "server unavailable",
    4: "not authorized: bad user name or password",
    5: "not authorized",
}

_X509_CERT_VERIFY_FAILED = -0x2700

# errno values of a broker that cannot be reached. Taken from the errno module because
# the numbers differ: ESP-IDF uses newlib's (ETIMEDOUT 116), Linux its own (110).
_UNREACHABLE = {}
for _name, _words in (("ECONNREFUSED", "connection refused"), ("ETIMEDOUT", "timed out"),
                      ("EHOSTUNREACH", "host unreachable"),
                      ("ENETUNREACH", "network unreachable")):
    if hasattr(errno, _name):
        _UNREACHABLE[getattr(errno, _name)] = _words


def generation(client_class=MQTTClient):
    """PARAMS, CONTEXT or BOTH, found by probing the constructor (it opens no socket)."""
    try:
        probe = client_class("probe", "localhost", ssl_params={})
    except TypeError:  # 1.4.x has no ssl_params keyword
        return CONTEXT
    # 1.3.x defaults ssl to False; 1.6+ to None (it also takes an SSLContext).
    return PARAMS if probe.ssl is False else BOTH


class _NoSniContext:
    """An SSLContext that drops server_hostname, so umqtt 1.4.x sends no SNI (sni: false)."""

    def __init__(self, context):
        self._context = context

    def wrap_socket(self, sock, server_hostname=None, **kwargs):
        return self._context.wrap_socket(sock, **kwargs)


def tls_arguments(settings, cadata, form):
    """Keyword arguments for MQTTClient that give TLS as the seed does: PEM CA as cadata,
    CERT_REQUIRED, and server_hostname (SNI) unless settings["sni"] is false."""
    server = settings["server"]
    sni = settings["sni"]
    if form == PARAMS or (form == BOTH and not sni):
        # The seed's own form. On 1.6+ this is also the one path that can omit SNI.
        ssl_params = {"cert_reqs": ssl.CERT_REQUIRED, "cadata": cadata}
        if sni:
            ssl_params["server_hostname"] = server
        return {"ssl": True, "ssl_params": ssl_params}
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=cadata)
    # umqtt passes server_hostname=server itself on this path.
    return {"ssl": context if sni else _NoSniContext(context)}


def make_client(settings, client_id, cadata=None, client_class=MQTTClient):
    """An unconnected MQTTClient configured from the settings."""
    kwargs = {"keepalive": settings["keepalive"]}
    if settings["tls"]:
        kwargs.update(tls_arguments(settings, cadata, generation(client_class)))
    return client_class(client_id, settings["server"], settings["port"], settings["user"],
                        settings["password"], **kwargs)


def resolve(server, port):
    """Look the broker up first, so a name that does not resolve gets its own message."""
    try:
        socket.getaddrinfo(server, port)
    except OSError as exc:
        raise ConnectError("mqtt", "broker host \"{}\" does not resolve ({})".format(
            server, exc_text(exc)), retry=True)


class ConnectError(Exception):
    """A failure with its console prefix ("mqtt", "tls") and whether retrying may help."""

    def __init__(self, area, message, retry=False):
        super().__init__(message)
        self.area = area
        self.retry = retry

    def line(self):
        return "ERROR {}: {}".format(self.area, self.args[0])


def exc_text(exc):
    text = " ".join(str(a) for a in exc.args) if exc.args else ""
    return "{}: {}".format(type(exc).__name__, text) if text else type(exc).__name__


def classify(exc, settings):
    """Turn an exception from client.connect() into a ConnectError."""
    where = "{}:{}".format(settings["server"], settings["port"])
    if isinstance(exc, MQTTException):
        code = exc.args[0] if exc.args else None
        reason = CONNACK_REASONS.get(code, "refused")
        return ConnectError("mqtt", "{} (CONNACK {}) from {}".format(reason, code, where),
                            retry=code == 3)
    if isinstance(exc, ValueError):
        # mbedTLS verification failures arrive as ValueError with the verify text
        # ("The certificate is not correctly signed by the trusted CA", "CN does not
        # match", "expired", "invalid cert", "CERT_REQUIRED requires server_hostname").
        text = " ".join(str(exc).split())  # the verify text may span lines
        if text in ("invalid cert", "invalid key"):
            # mbedTLS could not parse the CA we passed: the file is not a certificate.
            return ConnectError("tls", "ca_file {} is not a valid CA certificate ({})".format(
                settings["ca_file"], text))
        if "server_hostname" in text:
            # v1.22+ firmware refuses to verify a certificate without a hostname.
            return ConnectError("tls", "this firmware cannot verify the server without SNI "
                                "(sni is false): {}".format(text))
        return ConnectError("tls", "certificate verification failed: {}".format(text))
    if isinstance(exc, OSError):
        code = exc.args[0] if exc.args else 0
        if not isinstance(code, int):  # e.g. the unix port's "[addrinfo error -2]"
            if "addrinfo" in str(code):
                return ConnectError("mqtt", "broker host \"{}\" does not resolve ({})".format(
                    settings["server"], exc_text(exc)), retry=True)
            return ConnectError("mqtt", "connect to {} failed ({})".format(
                where, exc_text(exc)), retry=True)
        if code == _X509_CERT_VERIFY_FAILED:  # how firmware before v1.22 reports it
            return ConnectError("tls", "certificate verification failed ({})".format(
                exc_text(exc)))
        if code < -1:
            # mbedTLS error codes are negative (e.g. -0x2700 X509_CERT_VERIFY_FAILED).
            return ConnectError("tls", "handshake failed with {} ({})".format(
                where, exc_text(exc)), retry=True)
        if code in _UNREACHABLE:
            return ConnectError("mqtt", "broker unreachable at {}: {} ({})".format(
                where, _UNREACHABLE[code], exc_text(exc)), retry=True)
        # Connected, then the peer went away (reset, broken pipe, ...).
        if settings["tls"]:
            return ConnectError("tls", "handshake failed: {} closed the connection ({})".format(
                where, exc_text(exc)), retry=True)
        return ConnectError("mqtt", "no CONNACK from {}: the connection closed ({})".format(
            where, exc_text(exc)), retry=True)
    if isinstance(exc, (IndexError, AssertionError)):
        # umqtt read an empty or foreign reply where CONNACK belongs.
        return ConnectError("mqtt", "no CONNACK from {}: the connection closed or the "
                            "reply was not MQTT".format(where), retry=True)
    return ConnectError("mqtt", "connect to {} failed: {}".format(where, exc_text(exc)),
                        retry=True)


def connect(settings, client_id, cadata=None, client_class=MQTTClient):
    """Resolve, connect, and return the connected client; raise ConnectError on failure."""
    resolve(settings["server"], settings["port"])
    client = None
    try:
        # Building the SSLContext parses the CA (ValueError if it is not a certificate).
        client = make_client(settings, client_id, cadata, client_class)
        client.connect()
    except Exception as exc:  # umqtt raises OSError, ValueError, MQTTException, IndexError
        if client is not None:
            close(client)
        raise classify(exc, settings)
    return client


def close(client):
    """Close the client's socket, ignoring a socket that is already gone."""
    sock = getattr(client, "sock", None)
    if sock is not None:
        try:
            sock.close()
        except Exception:
            pass
