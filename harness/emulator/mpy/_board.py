# Board state shared by the emulated board modules (network, machine, socket, ssl).
# Runs ON the MicroPython unix interpreter. board_runtime fills it in before boot.py;
# device code has no reason to import it (a real ESP32 has no such module).

config = {}  # the boot configuration written by the host-side supervisor
real = {}  # the unix port's own 'socket', 'machine' and 'vfs', before the shims hid them
_ctl = None  # pipe to the supervisor: one-byte events
cpu_hz = 160000000  # machine.freq(); time.ticks_cpu() counts these


def init(cfg, builtins, ctl):
    global config, _ctl
    config = cfg
    real.update(builtins)
    _ctl = ctl


def event(code):
    # one of _board_wire's EVENT_* codes
    _ctl.write(code)


def not_modelled_error(what):
    # The one wording for a part of the firmware the emulator does not model.
    return NotImplementedError("{} is not modelled by the emulated ESP32 (the firmware has "
                               "it); run this part on a real board".format(what))


def not_modelled(qualname):
    # A firmware function or class without a model (esp, esp32, machine): using it says so.
    def refuse(*args, **kwargs):
        raise not_modelled_error(qualname)
    return refuse


def wifi():
    return config.get("wifi") or {}


def hosts():
    return config.get("hosts") or {}


def host_file(path):
    # A board-private host file (the RTC, RTC memory) as (filesystem, name): opened through
    # a VfsPosix of its folder, because "/" is the board's flash once booted.
    folder, name = path.rsplit("/", 1)
    return real["vfs"].VfsPosix(folder), "/" + name


heap_reserved = 0  # 64-bit heap bytes the runtime holds at boot (its own + the ballast)
_ballast = None
# The firmware's REPL is C: it reads lines into a buffer it already has and prints a
# traceback without the heap, so a program that filled its heap to the last byte still gets
# its prompt, a traceback and a soft reset. This REPL is Python and allocates as it goes: it
# borrows this much of the locked reserve while no user code runs, and gives it back before
# user code runs again (so the program's budget is unchanged).
REPL_ROOM = 4096 - 64
_repl_room = None


def lock_runtime_heap():
    # At boot, after the runtime has set itself up: lock away what the runtime does not
    # use of its reserve, so the program has exactly its budget (harness/emulator/heap.py).
    global _ballast, _repl_room, heap_reserved
    gc = real["gc"]
    plan = config.get("heap")
    if not plan:
        return
    gc.collect()
    spare = gc.mem_free() - int(plan["program_64"])
    if spare > REPL_ROOM + 128:
        _repl_room = bytearray(REPL_ROOM)
        spare -= REPL_ROOM + 64
    # In pieces: the free heap need not be one block. ~64 bytes cover each one's header.
    ballast = []
    while spare > 128:
        size = min(spare, 4096) - 64
        try:
            ballast.append(bytearray(size))
        except MemoryError:
            break
        spare -= size + 64
    _ballast = ballast
    gc.collect()
    heap_reserved = gc.mem_alloc()


def lend_repl_room():
    # No user code runs from here on: the REPL may use the borrowed room.
    global _repl_room
    _repl_room = None


def reclaim_repl_room():
    # User code is about to run: the room goes back into the reserve. If the REPL's own
    # objects still hold part of it, the program gets that part on top, never less.
    global _repl_room
    if _repl_room is None and config.get("heap"):
        try:
            _repl_room = bytearray(REPL_ROOM)
        except MemoryError:
            pass
