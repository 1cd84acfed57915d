# The board's `ssl` (and, on v1.22, `ussl`), over the interpreter's real mbedTLS (`tls`).
# The one honest difference it closes: ESP32 firmware accepts PEM certificates and keys,
# the unix mbedTLS build only DER, so PEM text is decoded to DER here and handed to the
# same verification (CA chain, hostname, dates). Runs ON the MicroPython interpreter.
import binascii

import tls
import socket as _board_socket

from tls import (  # noqa: F401 -- re-exported API
    CERT_NONE,
    CERT_OPTIONAL,
    CERT_REQUIRED,
    MBEDTLS_VERSION,
    PROTOCOL_TLS_CLIENT,
    PROTOCOL_TLS_SERVER,
)


def _der_blocks(data):
    # PEM text -> the DER bytes of each block, in order; DER input is passed through.
    if isinstance(data, str):
        data = data.encode()
    if b"-----BEGIN" not in data:
        return [bytes(data)]
    blocks = []
    for chunk in data.split(b"-----BEGIN")[1:]:
        body = chunk.split(b"-----", 1)[1].split(b"-----END", 1)[0]
        if b":" in body.split(b"\n\n", 1)[0]:
            raise ValueError("encrypted PEM keys are not supported")
        blocks.append(binascii.a2b_base64(b"".join(body.split())))
    if not blocks:
        raise ValueError("invalid cert")
    return blocks


def _read(path_or_data):
    if isinstance(path_or_data, str):
        with open(path_or_data, "rb") as f:
            return f.read()
    return path_or_data


class SSLContext:
    def __init__(self, protocol=PROTOCOL_TLS_CLIENT):
        self._context = tls.SSLContext(protocol)
        self._server = protocol == PROTOCOL_TLS_SERVER

    @property
    def verify_mode(self):
        return self._context.verify_mode

    @verify_mode.setter
    def verify_mode(self, mode):
        self._context.verify_mode = mode

    def load_verify_locations(self, cafile=None, cadata=None):
        data = _read(cafile) if cafile is not None else cadata
        if data is None:
            raise ValueError("cafile or cadata must be given")
        for der in _der_blocks(data):
            self._context.load_verify_locations(der)

    def load_cert_chain(self, certfile, keyfile):
        cert = _der_blocks(_read(certfile))[0]
        key = _der_blocks(_read(keyfile))[0]
        self._context.load_cert_chain(cert, key)

    def set_ciphers(self, ciphers):
        self._context.set_ciphers(ciphers)

    def get_ciphers(self):
        return self._context.get_ciphers()

    def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True,
                    server_hostname=None):
        _board_socket.check_link()
        if hasattr(sock, "in_tls"):
            sock.in_tls = True  # from now on mbedTLS calls its stream methods
        return self._context.wrap_socket(
            sock, server_side=server_side, do_handshake_on_connect=do_handshake_on_connect,
            server_hostname=server_hostname)


def wrap_socket(sock, server_side=False, key=None, cert=None, cert_reqs=CERT_NONE,
                cadata=None, server_hostname=None, do_handshake=True):
    context = SSLContext(PROTOCOL_TLS_SERVER if server_side else PROTOCOL_TLS_CLIENT)
    if key is not None or cert is not None:
        context.load_cert_chain(cert, key)
    if cadata is not None:
        context.load_verify_locations(cadata=cadata)
    context.verify_mode = cert_reqs
    return context.wrap_socket(sock, server_side=server_side,
                               do_handshake_on_connect=do_handshake,
                               server_hostname=server_hostname)
