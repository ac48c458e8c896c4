"""Atomic output files: a reader sees the old file, or the complete new one, never a
half-written one.

:func:`atomic_write` yields a temporary path in the destination's own folder (so the
final rename never crosses file systems), and on success renames it over the
destination with ``os.replace``; on any error the temporary file is removed and the
destination is left as it was. Failures of the file system (a folder where the file
should go, a full disk, no permission) become :class:`scziva.errors.OutputError` with
one line naming the path. ``need_bytes`` checks the free space first: h5py can crash
the process outright (not raise) when the disk fills during an HDF5 write, so
``.h5ad`` writers estimate their size with :func:`h5ad_size_estimate` and refuse early.

Files and folders appear with the permissions of any newly created file (``0666`` /
``0777`` less the user's umask: ``0644`` / ``0755`` under the usual umask 022), not the
private ``0600`` / ``0700`` of the temporary names they are written under, so that
collaborators who can read the folder can read the results.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputError

__all__ = ["atomic_write", "atomic_dir", "h5ad_size_estimate", "check_free_space", "check_writable",
           "os_error_message"]

#: kept free beyond an estimated size (file system metadata, HDF5 overhead, rounding)
FREE_MARGIN_BYTES = 8 << 20


def os_error_message(path, exc: OSError) -> str:
    """One line for an OSError about ``path``: "PATH: cannot be written (No space left on device)"."""
    why = exc.strerror or str(exc) or type(exc).__name__
    return f"{path}: cannot be written ({' '.join(str(why).split())})"


def current_umask() -> int:
    """The process's umask, without changing it (Linux reports it in /proc; elsewhere it
    is set and restored at once, which is what every Python program does to read it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish_mode(path: Path, folder: bool = False) -> None:
    """Give a finished temporary file (or folder) the mode a new one would get."""
    os.chmod(path, (0o777 if folder else 0o666) & ~current_umask())


def check_writable(path) -> None:
    """Raise :class:`OutputError` naming ``path`` unless a file can be created in its
    folder (tried for real: a temporary file is made and removed, which also catches
    read-only file systems and access-control lists that permission bits do not show).
    For checking an output before hours of work."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name for the output")
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"{folder}: output folder does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
    except OSError as exc:
        raise OutputError(os_error_message(path, exc)) from None
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError:  # pragma: no cover - made it, so it can almost always be removed
        pass


def _human(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def check_free_space(path, need_bytes: int) -> None:
    """Raise :class:`OutputError` when the folder of ``path`` has less than
    ``need_bytes`` plus :data:`FREE_MARGIN_BYTES` free."""
    path = Path(path)
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:  # cannot tell (odd file system): let the write itself decide
        return
    want = int(need_bytes) + FREE_MARGIN_BYTES
    if free < want:
        raise OutputError(f"{path}: not enough free disk space to write it (about {_human(want)} "
                          f"needed, {_human(free)} free in {path.parent}); free some space or "
                          "choose another folder")


@contextmanager
def atomic_write(path, *, need_bytes: int | None = None, make_parents: bool = False,
                 suffix: str = ".tmp"):
    """``with atomic_write(out) as tmp: write(tmp)`` -> ``out`` appears only when complete.

    ``need_bytes``: refuse before writing when the disk has less free space than that
    (see :func:`check_free_space`). ``make_parents``: create the destination's folder.
    ``suffix``: of the temporary file, for writers that pick the format from it (e.g.
    ``suffix=".png"`` for matplotlib's ``savefig``).
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name for the output")
    if make_parents:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(os_error_message(path.parent, exc)) from None
    if need_bytes is not None:
        check_free_space(path, need_bytes)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise OutputError(os_error_message(path, exc)) from None
    tmp = Path(tmp)
    try:
        yield tmp
        _publish_mode(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(os_error_message(path, exc)) from None
    finally:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        except OSError:  # pragma: no cover - nothing more can be done
            pass


@contextmanager
def atomic_dir(path):
    """``with atomic_dir(out) as tmp: fill(tmp)`` -> the folder ``out`` appears only when
    complete (an existing ``out`` is replaced); on any error ``tmp`` is removed."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)).resolve()
    except OSError as exc:
        raise OutputError(os_error_message(path, exc)) from None
    try:
        yield tmp
        _publish_mode(tmp, folder=True)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(os_error_message(path, exc)) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _nbytes(M) -> int:
    if M is None:
        return 0
    if hasattr(M, "data") and hasattr(M, "indices") and hasattr(M, "indptr"):  # scipy sparse
        return int(M.data.nbytes + M.indices.nbytes + M.indptr.nbytes)
    nb = getattr(M, "nbytes", None)
    if nb is not None:
        return int(nb)
    if hasattr(M, "memory_usage"):  # pandas
        return int(M.memory_usage(deep=True).sum())
    return 0


def h5ad_size_estimate(adata) -> int:
    """Bytes an uncompressed ``adata.write_h5ad`` needs, about: X, layers, obsm, varm,
    obsp, varp, obs, var (names and columns) plus 10 %."""
    total = _nbytes(adata.X)
    for group in ("layers", "obsm", "varm", "obsp", "varp"):
        for value in getattr(adata, group, {}).values():
            total += _nbytes(value)
    for frame in (adata.obs, adata.var):
        total += _nbytes(frame) + int(frame.index.memory_usage(deep=True))
    return int(total * 1.1)
