"""A FUSE filesystem that remembers only what was synced, for crash tests.

``python -m breezy_janitor_store.tests.support.crashfs MOUNTPOINT`` mounts an
in-memory filesystem at ``MOUNTPOINT`` (the test's storage directory).  It
keeps two states: what every process sees (the page cache, so to speak),
and what a crash would leave, changed only by syncs:

* ``fsync``/``fdatasync`` of a file makes its current content durable (a
  file never synced comes back empty after a crash);
* ``fsync`` of a directory makes its current names durable, each naming
  the inode it names now (a name created, renamed or removed since the
  directory's last sync is not durable; a directory never synced comes
  back empty).

This is the weakest guarantee POSIX gives, what a power loss may leave on a
journaling filesystem; every sync is an *event*, numbered.  Commands on
standard input, one a line, each answered with one line on standard output:

* ``mark LABEL``: record a marker event (say, "push N acknowledged");
  answers its event number;
* ``events``: the number of events, then the markers as ``N LABEL`` pairs;
* ``crash N DEST``: write the state a crash right after event ``N`` leaves
  (``0``: before any) into the empty directory ``DEST``; answers ``ok``;
* ``quit``: unmount and exit.

Operations run one at a time (FUSE's single-threaded loop); an event is
appended whole, so the command thread reads a consistent list.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import threading
import time

import mfusepy as fuse

__all__ = ["CrashFS"]


class _Inode:
    __slots__ = ("data", "entries", "mode", "mtime", "number")

    def __init__(self, number: int, mode: int) -> None:
        self.number = number
        self.mode = mode
        self.data = bytearray()
        self.entries: dict[str, _Inode] | None = {} if stat.S_ISDIR(mode) else None
        self.mtime = time.time_ns()


class CrashFS(fuse.Operations):
    """The filesystem: volatile inodes, and the list of sync events."""

    use_ns = True

    def __init__(self) -> None:
        self._next = 1
        self.root = self._new(stat.S_IFDIR | 0o755)
        self.inodes: dict[int, _Inode] = {self.root.number: self.root}
        self.handles: dict[int, _Inode] = {}
        self._next_handle = 1
        #: ("file", inode number, bytes) | ("dir", number, {name: (number, mode)})
        #: | ("mark", label)
        self.events: list[tuple] = []

    # -- state --

    def _new(self, mode: int) -> _Inode:
        inode = _Inode(self._next, mode)
        self._next += 1
        return inode

    def _lookup(self, path: str) -> _Inode:
        inode = self.root
        for name in path.strip("/").split("/"):
            if not name:
                continue
            if inode.entries is None or name not in inode.entries:
                raise fuse.FuseOSError(errno.ENOENT)
            inode = inode.entries[name]
        return inode

    def _parent(self, path: str) -> tuple[_Inode, str]:
        head, name = os.path.split(path.rstrip("/"))
        parent = self._lookup(head)
        if parent.entries is None:
            raise fuse.FuseOSError(errno.ENOTDIR)
        return parent, name

    def _handle(self, inode: _Inode) -> int:
        fh = self._next_handle
        self._next_handle += 1
        self.handles[fh] = inode
        return fh

    def _inode(self, path: str | None, fh: int | None) -> _Inode:
        if fh and fh in self.handles:
            return self.handles[fh]
        return self._lookup(path or "/")

    # -- crash states --

    def mark(self, label: str) -> int:
        self.events.append(("mark", label))
        return len(self.events)

    def crash(self, upto: int, dest: str) -> None:
        """Write into ``dest`` what a crash right after event ``upto`` leaves."""
        files: dict[int, bytes] = {}
        dirs: dict[int, dict[str, tuple[int, int]]] = {}
        for event in self.events[:upto]:
            if event[0] == "file":
                files[event[1]] = event[2]
            elif event[0] == "dir":
                dirs[event[1]] = event[2]
        pending = [(self.root.number, dest)]
        while pending:
            number, where = pending.pop()
            for name, (child, mode) in dirs.get(number, {}).items():
                path = os.path.join(where, name)
                if stat.S_ISDIR(mode):
                    os.mkdir(path)
                    pending.append((child, path))
                else:
                    with open(path, "wb") as f:
                        f.write(files.get(child, b""))

    # -- FUSE operations --

    def getattr(self, path, fh=None):
        inode = self._inode(path, fh)
        is_dir = inode.entries is not None
        return {
            "st_mode": inode.mode,
            "st_ino": inode.number,
            "st_nlink": 2 if is_dir else 1,
            "st_size": 4096 if is_dir else len(inode.data),
            "st_uid": os.getuid(),
            "st_gid": os.getgid(),
            "st_mtime": inode.mtime,
            "st_ctime": inode.mtime,
            "st_atime": inode.mtime,
        }

    def readdir(self, path, fh):
        inode = self._inode(path, fh)
        return [".", "..", *inode.entries]

    def opendir(self, path):
        return self._handle(self._lookup(path))

    def releasedir(self, path, fh):
        self.handles.pop(fh, None)
        return 0

    def mkdir(self, path, mode):
        parent, name = self._parent(path)
        if name in parent.entries:
            raise fuse.FuseOSError(errno.EEXIST)
        child = self._new(stat.S_IFDIR | (mode & 0o7777))
        self.inodes[child.number] = child
        parent.entries[name] = child
        parent.mtime = time.time_ns()
        return 0

    def rmdir(self, path):
        parent, name = self._parent(path)
        child = parent.entries.get(name)
        if child is None:
            raise fuse.FuseOSError(errno.ENOENT)
        if child.entries is None:
            raise fuse.FuseOSError(errno.ENOTDIR)
        if child.entries:
            raise fuse.FuseOSError(errno.ENOTEMPTY)
        del parent.entries[name]
        return 0

    def create(self, path, mode, fi=None):
        parent, name = self._parent(path)
        child = parent.entries.get(name)
        if child is None:
            child = self._new(stat.S_IFREG | (mode & 0o7777))
            self.inodes[child.number] = child
            parent.entries[name] = child
            parent.mtime = time.time_ns()
        return self._handle(child)

    def open(self, path, flags):
        inode = self._lookup(path)
        if flags & os.O_TRUNC:
            inode.data.clear()
        return self._handle(inode)

    def release(self, path, fh):
        self.handles.pop(fh, None)
        return 0

    def read(self, path, size, offset, fh):
        return bytes(self._inode(path, fh).data[offset : offset + size])

    def write(self, path, data, offset, fh):
        inode = self._inode(path, fh)
        if offset > len(inode.data):
            inode.data.extend(b"\0" * (offset - len(inode.data)))
        inode.data[offset : offset + len(data)] = data
        inode.mtime = time.time_ns()
        return len(data)

    def truncate(self, path, length, fh=None):
        inode = self._inode(path, fh)
        del inode.data[length:]
        if length > len(inode.data):
            inode.data.extend(b"\0" * (length - len(inode.data)))
        return 0

    def unlink(self, path):
        parent, name = self._parent(path)
        if name not in parent.entries:
            raise fuse.FuseOSError(errno.ENOENT)
        del parent.entries[name]
        return 0

    def rename(self, old, new):
        old_parent, old_name = self._parent(old)
        new_parent, new_name = self._parent(new)
        inode = old_parent.entries.get(old_name)
        if inode is None:
            raise fuse.FuseOSError(errno.ENOENT)
        target = new_parent.entries.get(new_name)
        if target is not None and target.entries is not None:
            if inode.entries is None:
                raise fuse.FuseOSError(errno.EISDIR)
            if target.entries:
                raise fuse.FuseOSError(errno.ENOTEMPTY)
        del old_parent.entries[old_name]
        new_parent.entries[new_name] = inode
        return 0

    def chmod(self, path, mode):
        inode = self._lookup(path)
        inode.mode = stat.S_IFMT(inode.mode) | (mode & 0o7777)
        return 0

    def chown(self, path, uid, gid):
        return 0

    def utimens(self, path, times=None):
        self._lookup(path).mtime = times[1] if times else time.time_ns()
        return 0

    def statfs(self, path):
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": 1 << 20,
                "f_bfree": 1 << 19, "f_bavail": 1 << 19, "f_files": 1 << 20,
                "f_ffree": 1 << 19, "f_namemax": 255}  # fmt: skip

    def fsync(self, path, datasync, fh):
        inode = self._inode(path, fh)
        self.events.append(("file", inode.number, bytes(inode.data)))
        return 0

    def fsyncdir(self, path, datasync, fh):
        inode = self._inode(path, fh)
        self.events.append(
            (
                "dir",
                inode.number,
                {n: (c.number, c.mode) for n, c in inode.entries.items()},
            )
        )
        return 0

    def flush(self, path, fh):
        return 0


def _commands(fs: CrashFS, mountpoint: str) -> None:
    for line in sys.stdin:
        verb, _, rest = line.strip().partition(" ")
        if verb == "mark":
            answer = str(fs.mark(rest))
        elif verb == "events":
            events = list(fs.events)
            marks = [f"{n} {e[1]}" for n, e in enumerate(events, 1) if e[0] == "mark"]
            answer = " ".join([str(len(events)), *marks])
        elif verb == "crash":
            upto, dest = rest.split(" ", 1)
            fs.crash(int(upto), dest)
            answer = "ok"
        else:
            break
        sys.stdout.write(answer + "\n")
        sys.stdout.flush()
    if subprocess.run(["fusermount3", "-u", mountpoint], check=False).returncode:
        subprocess.run(["umount", "-l", mountpoint], check=False)


def main(mountpoint: str) -> None:
    fs = CrashFS()
    threading.Thread(target=_commands, args=(fs, mountpoint), daemon=True).start()
    # a removed file is gone at once (no .fuse_hidden files), as on disk
    fuse.FUSE(fs, mountpoint, foreground=True, nothreads=True,
              hard_remove=True, attr_timeout=0, entry_timeout=0,
              negative_timeout=0)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1])
