"""What an ESP32's mask ROM is and prints: its boot messages, the chip identity it reports,
its flash geometry.

The boot lines are those of the ESP32 ROM of 2016-06-08 and of ESP-IDF's second-stage
bootloader as a MicroPython ESP32_GENERIC board prints them on UART0 at 115200 baud; the
register and eFuse addresses are the ones esptool's ESP32 target reads (``esptool/targets/
esp32.py``).
"""

from __future__ import annotations

# --- boot messages -----------------------------------------------------------------------
ROM_BOOT_LINE = b"ets Jun  8 2016 00:22:57\r\n\r\n"  # the first thing the ROM prints
# "rst:<cause>,boot:<strapping>" per reset cause, booting from flash (boot:0x13).
RESET_LINE_POWERON = b"rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
RESET_LINE_SW = b"rst:0x3 (SW_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
RESET_LINE_DEEPSLEEP = b"rst:0x5 (DEEPSLEEP_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
RESET_LINE_SW_CPU = b"rst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
RESET_LINE_RTC_WATCHDOG = b"rst:0x10 (RTCWDT_RTC_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
# IO0 low at reset: the strapping selects the UART download mode (boot:0x3).
DOWNLOAD_RESET_LINE = (b"rst:0x1 (POWERON_RESET),boot:0x3 "
                       b"(DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))\r\n")
DOWNLOAD_WAIT = b"waiting for download"  # the ROM's last line before it serves esptool
DOWNLOAD_BOOT = b"DOWNLOAD_BOOT"  # in the reset line of a download-mode boot
DOWNLOAD_BANNER = ROM_BOOT_LINE + DOWNLOAD_RESET_LINE + DOWNLOAD_WAIT + b"\r\n"
FLASH_BOOT_BANNER = ROM_BOOT_LINE + RESET_LINE_POWERON
# The ROM loading ESP-IDF's second-stage bootloader from flash, before the app starts.
BOOTLOADER_LOAD_LINES = (
    b"configsip: 0, SPIWP:0xee\r\nclk_drv:0x00,q_drv:0x00,d_drv:0x00,cs0_drv:0x00,"
    b"hd_drv:0x00,wp_drv:0x00\r\nmode:DIO, clock div:2\r\nload:0x3fff0030,len:4728\r\n"
    b"load:0x40078000,len:14888\r\nload:0x40080400,len:3368\r\nentry 0x400805cc\r\n")


def invalid_header_line(word: int) -> bytes:
    """What the ROM prints when the flash holds no image header where the second-stage
    bootloader belongs (``word``: the four bytes it found, little-endian)."""
    return f"invalid header: 0x{word:08x}\r\n".encode()


# An erased flash: the ROM prints the invalid-header line this many times before its RTC
# watchdog resets the chip (RESET_LINE_RTC_WATCHDOG), for ever.
INVALID_HEADER_LINES = 8
# A bootloader without a bootable app: ESP-IDF's bootloader says so and resets the chip
# (RESET_LINE_SW).
NO_APP_LINES = (b"E (466) esp_image: image at 0x10000 has invalid magic byte "
                b"(nothing flashed here?)\r\n"
                b"E (466) boot: Factory app partition is not bootable\r\n"
                b"E (467) boot: No bootable app partitions in the partition table\r\n")

# --- identity and geometry of the emulated chip (an ESP32-D0WD-V3 rev 3.0) -------------
DEFAULT_MAC = bytes.fromhex("246f28a1b2c3")  # an Espressif OUI (24:6f:28)
DEFAULT_FLASH_SIZE = 4 * 1024 * 1024
SECTOR_SIZE = 0x1000
XTAL_HZ = 40_000_000

# Registers esptool reads in download mode.
CHIP_DETECT_MAGIC_ADDR = 0x40001000
ESP32_MAGIC = 0x00F01D83  # what that address holds on an ESP32
EFUSE_BASE = 0x3FF5A000
APB_CTL_DATE = 0x3FF6607C
UART_CLKDIV = 0x3FF40014
RTC_CALI = 0x3FF5F06C
GPIO_STRAP = 0x3FF44038
# The SPI0 "user command" unit esptool drives to query the flash chip.
SPI_BASE = 0x3FF42000
SPI_CMD = SPI_BASE + 0x00
SPI_ADDR = SPI_BASE + 0x04
SPI_USR2 = SPI_BASE + 0x24
SPI_W0 = SPI_BASE + 0x80
SPI_CMD_USR = 1 << 18
FLASH_RDID = 0x9F  # JEDEC id: manufacturer, memory type, capacity (log2 bytes)
FLASH_RDSFDP = 0x5A  # the "SFDP" signature at address 0
SFDP_SIGNATURE = 0x50444653
WINBOND = 0xEF  # the flash chip's JEDEC manufacturer id
