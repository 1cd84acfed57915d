"""The harness's single exception tree.

Every error a user can cause derives from :class:`HarnessError`. Its ``str()`` is one
line that says what was wrong and what to do; the CLI and the pytest plugin print just
that line, never a traceback of harness internals. Third-party errors (pyserial,
mpremote, paho, amqtt, esptool) are wrapped where they enter harness code, with
``raise ... from exc`` so the cause is kept for debugging.
"""

from __future__ import annotations


def one_line(exc: BaseException) -> str:
    """An exception as one log line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class HarnessError(Exception):
    """Root of every error the harness raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} — {hint}")


# --- programs the harness runs -------------------------------------------------------
class ProcessFailed(HarnessError):
    """A program the harness ran exited non-zero or did not finish in time. The message
    holds the command, the exit code and the tail of the program's output."""


# --- user input -------------------------------------------------------------------
class ConfigError(HarnessError):
    """A bad option, path, URL or file given by the user."""


class SettingsError(ConfigError):
    """A device settings file or settings value that breaks the settings contract."""


# --- waiting ----------------------------------------------------------------------
class DeadlineExceeded(HarnessError):
    """A wait ran out of time. The message names what was awaited and what was seen."""


class ExpectTimeout(DeadlineExceeded):
    """A pattern did not appear in a serial log in time."""


# --- devices ----------------------------------------------------------------------
class DeviceError(HarnessError):
    """Something about the device under test (real or emulated)."""


class PortNotFound(DeviceError):
    """No serial port by that name, or auto-detection found none or several."""


class PortBusy(DeviceError):
    """The serial port is held by another process."""


class NotMicroPython(DeviceError):
    """The port answers, but not with a MicroPython REPL."""


class BootLoop(DeviceError):
    """The device keeps rebooting: its program ends in a reset, a crash or SystemExit."""


class BootloaderStuck(DeviceError):
    """The board sits in the ROM download mode and does not boot the firmware."""


class DeviceCodeRaised(DeviceError):
    """Code the harness ran on the device raised there (the board itself answered)."""


class DeviceLost(DeviceError):
    """The port vanished or stopped answering mid-session."""


class ProgramStopped(DeviceError):
    """The device program ended (crashed, or returned to the REPL) before what was awaited."""


class ProgramBootLooping(ProgramStopped):
    """The device program keeps rebooting the board (SystemExit, a crash into a reset)."""

    def __init__(self, message: str, *, loop: str) -> None:
        super().__init__(message)
        self.loop = loop  # the loop itself in words: how often, how fast, what came before


class RunSettled(HarnessError):
    """A run's wait ended on evidence from outside the serial line (the wire showed that
    what it waits for cannot come, or no longer matters)."""


class FlashError(DeviceError):
    """Firmware flashing failed or the image does not fit the board."""


class DeployError(DeviceError):
    """Copying the device program or its settings to the board failed."""


# --- the emulated board -------------------------------------------------------------
class EmulatorError(HarnessError):
    """The emulated ESP32 could not be set up or run."""


class InterpreterMissing(EmulatorError):
    """The MicroPython unix-port interpreter is not installed."""


class UnknownProfile(EmulatorError, ConfigError):
    """A firmware profile name the emulator does not know."""


class PackageFetchError(EmulatorError):
    """A MicroPython package could not be fetched or failed its hash check."""


# --- the broker side --------------------------------------------------------------
class BrokerError(HarnessError):
    """A broker, the TLS front / wire tap or the observer failed."""


class PortInUse(BrokerError):
    """A TCP port the harness was told to bind is already taken."""


class BrokerNotInstalled(BrokerError):
    """A broker backend's program is not installed on this machine."""


class BrokerUnreachable(BrokerError):
    """An external broker URL cannot be reached."""


class PkiError(HarnessError):
    """Test certificates could not be made or a certificate/key file is missing."""


# --- reporting --------------------------------------------------------------------
class HistoryError(HarnessError):
    """The results history database cannot be read or written."""
