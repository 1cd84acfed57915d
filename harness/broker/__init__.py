"""The broker side of the harness: brokers, test PKI, the TLS/SNI front with its MQTT
wire tap, and a paho observer.

- :mod:`~harness.broker.pki`               CA and server certificates (PEM + DER)
- :mod:`~harness.broker.base`              the :class:`Broker` interface, :func:`open_broker`
- :mod:`~harness.broker.amqtt_broker`      embedded amqtt (default)
- :mod:`~harness.broker.mosquitto_broker`  Debian's mosquitto
- :mod:`~harness.broker.external`          a broker given by URL
- :mod:`~harness.broker.mqtt_codec`        incremental MQTT 3.1.1 decoder
- :mod:`~harness.broker.tap`               TLS/SNI front + wire tap (records in ``tap_records``)
- :mod:`~harness.broker.observer`          paho-mqtt 2.x subscriber/publisher
"""

from harness.broker.amqtt_broker import AmqttBroker
from harness.broker.base import Broker, BrokerEvent, open_broker
from harness.broker.external import ExternalBroker
from harness.broker.mosquitto_broker import MosquittoBroker
from harness.broker.mqtt_codec import DecodeProblem, MqttPacket, StreamDecoder
from harness.broker.observer import ObservedMessage, Observer, ObserverError
from harness.broker.pki import CertPair, TestPki
from harness.broker.tap import Tap, TapTls
from harness.broker.tap_records import TapConnection, TapRecord

__all__ = [
    "AmqttBroker",
    "Broker",
    "BrokerEvent",
    "CertPair",
    "DecodeProblem",
    "ExternalBroker",
    "MosquittoBroker",
    "MqttPacket",
    "ObservedMessage",
    "Observer",
    "ObserverError",
    "StreamDecoder",
    "Tap",
    "TapConnection",
    "TapRecord",
    "TapTls",
    "TestPki",
    "open_broker",
]
