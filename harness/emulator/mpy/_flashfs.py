# The emulated ESP32's flash filesystem. Runs ON the MicroPython interpreter.
import vfs


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
        return self._host.open(self._path(path), mode)
