# The emulated ESP32's flash filesystem. Runs ON the MicroPython interpreter.
import io

import vfs

ENOSPC = 28
_BLOCK = 4096


# --- flash filesystem ---------------------------------------------------------------
class FlashFS:
    # The board's flash: a host directory, seen as "/". Paths are normalised here so
    # ".." never leaves the directory, and ilistdir reports sizes like littlefs/FAT do.

    def __init__(self, root, scratch, paste_name, blocks):
        self._host = vfs.VfsPosix(root)
        self._cwd = "/"
        self._scratch = scratch  # where raw-paste input is spooled (not on the flash)
        self._paste_name = paste_name
        self._blocks = blocks
        self.paste = None  # the scratch file to compile while raw-paste code runs

    def _path(self, path):
        if not path.startswith("/"):
            path = self._cwd + "/" + path
        parts = []
        for part in path.split("/"):
            if part == "..":
                if parts:
                    parts.pop()
            elif part and part != ".":
                parts.append(part)
        return "/" + "/".join(parts)

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def ilistdir(self, path):
        base = self._path(path)
        prefix = base if base.endswith("/") else base + "/"
        for entry in self._host.ilistdir(base):
            name, kind = entry[0], entry[1]
            size = 0 if kind == 0x4000 else self._host.stat(prefix + name)[6]
            yield (name, kind, 0, size)

    def chdir(self, path):
        target = self._path(path)
        if not self._host.stat(target)[0] & 0x4000:
            raise OSError(20)  # ENOTDIR
        self._cwd = target

    def getcwd(self):
        return self._cwd

    def mkdir(self, path):
        self._host.mkdir(self._path(path))

    def remove(self, path):
        self._host.remove(self._path(path))

    def rename(self, old, new):
        self._host.rename(self._path(old), self._path(new))

    def rmdir(self, path):
        self._host.rmdir(self._path(path))

    def stat(self, path):
        return self._host.stat(self._path(path))

    def statvfs(self, path):
        # An ESP32's default 2 MiB FAT/littlefs partition, not the host disk.
        block, blocks = 4096, self._blocks
        used = self._used_blocks("/", block)
        return (block, block, blocks, max(0, blocks - used), max(0, blocks - used), 0, 0, 0, 0, 255)

    def _used_blocks(self, path, block):
        used = 0
        for name, kind, _ino, size in self.ilistdir(path):
            if kind == 0x4000:
                used += 1 + self._used_blocks(path.rstrip("/") + "/" + name, block)
            else:
                used += (size + block - 1) // block
        return used

    def open(self, path, mode):
        if path == self._paste_name and self.paste is not None:
            return self._scratch.open(self.paste, "rb")
        f = self._host.open(self._path(path), mode)
        if "w" in mode or "a" in mode or "+" in mode:
            # The partition's size holds: a write that needs a block the flash does not
            # have fails with ENOSPC, as littlefs/FAT do on the chip.
            used = self._used_blocks("/", _BLOCK)
            return _CappedFile(f, max(0, self._blocks - used))
        return f


class _CappedFile(io.IOBase):
    # A file open for writing on the board's flash, with the blocks still free counted
    # when it was opened: growing past them raises OSError(ENOSPC).
    def __init__(self, f, free_blocks):
        self._f = f
        self._start = f.seek(0, 1)
        end = f.seek(0, 2)
        f.seek(self._start)
        self._allowed = (end + _BLOCK - 1) // _BLOCK * _BLOCK + free_blocks * _BLOCK
        self._end = end

    def write(self, data):
        position = self._f.seek(0, 1)
        if position + len(data) > self._allowed:
            raise OSError(ENOSPC)
        written = self._f.write(data)
        self._end = max(self._end, position + (written or 0))
        return written

    def readinto(self, buf):
        return self._f.readinto(buf)

    def read(self, *n):
        return self._f.read(*n)

    def readline(self, *n):
        return self._f.readline(*n)

    def seek(self, offset, whence=0):
        return self._f.seek(offset, whence)

    def tell(self):
        return self._f.seek(0, 1)

    def flush(self):
        return self._f.flush()

    def close(self):
        self._f.close()

    def ioctl(self, request, arg):
        if request == 4:  # MP_STREAM_CLOSE
            self._f.close()
        return 0

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._f.close()
