# The MQTT client from EMQX's "ESP32 + MicroPython" guide, with its settings read from
# /settings.json (docs/settings.md) instead of constants, and errors reported as one line.
#
# Sequence, as in the guide: Wi-Fi, connect, set_callback, subscribe, then loop
# publish {"msg": n} -> wait_msg() -> sleep(publish_interval).
# The console lines are the guide's, byte for byte; failures print "ERROR <area>: ...".
# After a failure the program returns to the REPL (no reboot loop) unless "reconnect" is
# true, in which case it retries with exponential backoff and jitter, and resumes the
# counter. With "reconnect" and a keepalive, a connection that goes silent (a dead NAT
# swallows bytes and never resets) is detected by a PINGREQ left unanswered, because
# umqtt.simple's blocking wait_msg() alone would wait for ever.

import gc
import json
import random
import select
import time

import clock
import mqtt
import settings as config
import wifi


class Silent(Exception):
    """The broker did not answer a PINGREQ: the connection is gone without an error."""


class Inbox:
    """Counts messages handed to the callback, so a PINGRESP is not taken for one."""

    count = 0


def on_message(topic, msg):
    Inbox.count += 1
    try:
        payload = msg.decode()
    except UnicodeError:  # a foreign binary payload must not stop the device
        payload = repr(msg)
    # The guide prints a blank line after each received message; keep it.
    print("Received '{payload}' from topic '{topic}'\n".format(
        payload=payload, topic=topic.decode()))


def connect(cfg, client_id, cadata):
    client = mqtt.connect(cfg, client_id, cadata)
    print('Connected to MQTT Broker "{server}"'.format(server=cfg["server"]))
    return client


def subscribe(client, topic):
    # The callback goes in before SUBSCRIBE so a retained message is not missed.
    client.set_callback(on_message)
    client.subscribe(topic)


class Counter:
    """The message number; it survives reconnects so the sequence has no gaps."""

    def __init__(self):
        self.value = 0


def loop_publish(client, cfg, counter):
    topic = cfg["topic"]
    mem_every = cfg["mem_log_every"]
    while True:
        msg = json.dumps({'msg': counter.value})
        client.publish(topic, msg)
        print("Send '{msg}' to topic '{topic}'".format(msg=msg, topic=topic))
        counter.value += 1  # counted once sent, so a resumed loop does not repeat it
        wait_msg(client, cfg)
        msg = None
        gc.collect()  # keep the heap flat over hours of looping
        if mem_every and counter.value % mem_every == 0:
            print("Memory free: {} bytes after {} messages".format(_mem_free(), counter.value))
        time.sleep(cfg["publish_interval"])


def wait_msg(client, cfg):
    """One incoming message, as the guide's client.wait_msg(). With reconnect and a
    keepalive, silence is bounded: after keepalive/2 without a byte a PINGREQ goes out,
    and a further keepalive/2 without any reply raises Silent (MQTT's own rule, a missed
    PINGRESP; a server gives up after 1.5 x keepalive)."""
    keepalive = cfg["keepalive"]
    if not (cfg["reconnect"] and keepalive):
        client.wait_msg()
        return
    poller = select.poll()
    poller.register(client.sock, select.POLLIN)
    half_ms = keepalive * 500
    pinged = False
    seen = Inbox.count
    while Inbox.count == seen:
        if poller.poll(half_ms):
            client.wait_msg()  # a message, a PINGRESP, or an error if the peer went away
            pinged = False
        elif pinged:
            raise Silent("no PINGRESP within {} s".format(keepalive))
        else:
            client.ping()
            pinged = True


def backoff(delay):
    """The wait before the next attempt: ``delay`` +-30 % at random, so that boards that
    lost the same broker do not all come back in the same instant."""
    return delay * (0.7 + 0.6 * random.getrandbits(16) / 65535)


def _mem_free():
    return gc.mem_free() if hasattr(gc, "mem_free") else -1


def _default_client_id():
    return 'micropython-client-{id}'.format(id=random.getrandbits(8))


def run(path=config.PATH):
    try:
        cfg = config.load(path)
        cadata = config.read_ca(cfg)
    except config.SettingsError as exc:
        print("ERROR settings: {}".format(exc))
        return
    client_id = cfg["client_id"] or _default_client_id()
    counter = Counter()
    delay = cfg["reconnect_delay"]
    first = True
    # TLS needs the real date on firmware that checks certificate dates (spec S13).
    needs_clock = cfg["tls"] and clock.firmware_checks_dates()
    while True:
        client = None
        try:
            # The first pass always joins, as the guide does; later passes only if the
            # link dropped.
            if first or not wifi.is_connected():
                wifi.connect(cfg["wifi_ssid"], cfg["wifi_password"], cfg["wifi_timeout"])
            first = False
            if needs_clock:
                clock.set_clock(cfg["ntp_server"])
                needs_clock = False
            client = connect(cfg, client_id, cadata)
            subscribe(client, cfg["topic"])
            delay = cfg["reconnect_delay"]
            loop_publish(client, cfg, counter)
        except wifi.WifiError as exc:
            line, retry = "ERROR wifi: {}".format(exc), True
        except clock.ClockError as exc:
            line, retry = "ERROR time: {}".format(exc), True
        except mqtt.ConnectError as exc:
            line, retry = exc.line(), exc.retry
        except (OSError, mqtt.MQTTException, IndexError, Silent) as exc:
            # A drop after connecting: umqtt raises OSError(-1) on EOF, OSError on a reset.
            line = "ERROR mqtt: connection lost after {} messages ({})".format(
                counter.value, mqtt.exc_text(exc))
            retry = True
        if client is not None:
            mqtt.close(client)
        client = None
        print(line)
        if not (cfg["reconnect"] and retry):
            return
        wait = backoff(delay)
        print("Reconnecting in {:.2f} s".format(wait))
        gc.collect()
        time.sleep(wait)
        delay = min(delay * 2, cfg["reconnect_max_delay"])


if __name__ == "__main__":
    run()
