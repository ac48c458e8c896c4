"""Attacks and hostile input (issue 9): archives that write outside their folder,
workflow scripts importing another checkout's code, report captions that inject markup.

Each test builds the attack itself in a temporary folder and asserts that nothing
outside the destination was written and that the user sees one line, not a traceback.
"""

from __future__ import annotations

import io as _io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from scziva_bench import zenodo


# ----------------------------------------------------------------------------- archives
class _Tar:
    """Build a tar in memory member by member (order matters for link attacks)."""

    def __init__(self):
        self.buf = _io.BytesIO()
        self.tf = tarfile.open(fileobj=self.buf, mode="w")

    def dir(self, name):
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, 0o777
        self.tf.addfile(info)

    def symlink(self, name, target):
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.SYMTYPE, target
        self.tf.addfile(info)

    def hardlink(self, name, target):
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.LNKTYPE, target
        self.tf.addfile(info)

    def file(self, name, data: bytes):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        self.tf.addfile(info, _io.BytesIO(data))

    def special(self, name, kind):
        info = tarfile.TarInfo(name)
        info.type = kind
        self.tf.addfile(info)

    def save(self, path: Path) -> Path:
        self.tf.close()
        path.write_bytes(self.buf.getvalue())
        return path


def _tree(root: Path) -> dict:
    """Every path under ``root`` (links not followed) -> file bytes or a marker."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_file():
                out[rel] = p.read_bytes()
            else:
                out[rel] = "dir"
    return out


@pytest.fixture
def victim(tmp_path):
    """A folder holding a file the archive will try to overwrite, and the archive's own
    folder inside it. Returns (top, archive folder, flag file)."""
    top = tmp_path / "top"
    arc_dir = top / "dl"
    arc_dir.mkdir(parents=True)
    flag = top / "flag"
    flag.write_bytes(b"original")
    return top, arc_dir, flag


def _path_max_attack(arc_dir: Path) -> Path:
    """The pattern of CPython's test for CVE-2025-4517: nested symlinks whose lexical
    targets stay inside, a last link that only escapes once its parents are expanded
    past PATH_MAX, then a hardlink through it and a file written through the hardlink."""
    steps = "abcdefghijklmnop"
    try:
        path_max = os.pathconf(arc_dir, "PC_PATH_MAX")
    except (OSError, ValueError):  # pragma: no cover - non-POSIX
        path_max = 4096
    # extract_archive unpacks into a temporary folder arc_dir/.payload.XXXXXXXX
    dest_len = len(str(arc_dir / ".payload.XXXXXXXX")) + 1
    comp = "d" * max(1, min(255, (path_max - dest_len) // (len(steps) + 1)))
    t = _Tar()
    path = ""
    for s in steps:
        t.dir(os.path.join(path, comp))
        t.symlink(os.path.join(path, s), comp)
        path = os.path.join(path, comp)
    link = os.path.join(*steps, "l" * 254)
    t.symlink(link, os.path.join(*[".."] * len(steps)))
    t.symlink("escape", os.path.join(link, ".."))
    # "escape" is the folder that holds the extraction folder: arc_dir
    t.hardlink("flaglink", os.path.join("escape", "..", "flag"))
    t.file("flaglink", b"overwritten")
    t.file("escape/newfile", b"new")
    return t.save(arc_dir / "payload.tar")


def _simple_chain(arc_dir: Path) -> Path:
    t = _Tar()
    t.dir("d")
    t.symlink("d/l", "..")
    t.symlink("x", "d/l/..")
    t.file("x/escaped.txt", b"pwned")
    return t.save(arc_dir / "chain.tar")


def _assert_refused(archive: Path, top: Path, flag: Path, capsys, member_hint: str):
    before = _tree(top)
    with pytest.raises(zenodo.DownloadError) as err:
        zenodo.extract_archive(archive)
    msg = str(err.value)
    assert "\n" not in msg and archive.name in msg and member_hint in msg, msg
    assert flag.read_bytes() == b"original"
    assert _tree(top) == before, "something was written"


def test_tar_cve_2025_4517_pattern_writes_nothing_outside(victim, capsys):
    top, arc_dir, flag = victim
    archive = _path_max_attack(arc_dir)
    _assert_refused(archive, top, flag, capsys, "symbolic link")


def test_tar_simple_symlink_chain_is_one_line(victim, capsys):
    top, arc_dir, flag = victim
    archive = _simple_chain(arc_dir)
    _assert_refused(archive, top, flag, capsys, "'d/l'")


def test_tar_hardlink_inside_is_refused_too(victim, capsys):
    top, arc_dir, flag = victim
    t = _Tar()
    t.file("a.txt", b"a")
    t.hardlink("b.txt", "a.txt")
    _assert_refused(t.save(arc_dir / "hard.tar"), top, flag, capsys, "hard link")


@pytest.mark.parametrize("name", ["../up.txt", "/abs.txt", "C:/win.txt", "C:win.txt", "ok/../../up.txt",
                                  "a\\..\\..\\up.txt", "", "new\nline.txt"])
def test_tar_member_names_checked_without_the_stdlib_filter(victim, capsys, name, monkeypatch):
    top, arc_dir, flag = victim
    t = _Tar()
    t.file("fine.txt", b"ok")
    t.file(name, b"pwned")
    archive = t.save(arc_dir / "names.tar")
    # our own check must stop it, even with a tarfile that filters nothing
    real_extractall = tarfile.TarFile.extractall

    def unfiltered(self, path=".", members=None, *, numeric_owner=False, filter=None):
        return real_extractall(self, path, members, numeric_owner=numeric_owner,
                               filter="fully_trusted")

    monkeypatch.setattr(tarfile.TarFile, "extractall", unfiltered)
    _assert_refused(archive, top, flag, capsys, "")


@pytest.mark.parametrize("kind,word", [(tarfile.FIFOTYPE, "fifo"), (tarfile.CHRTYPE, "device"),
                                       (tarfile.BLKTYPE, "device")])
def test_tar_devices_and_fifos_refused(victim, capsys, kind, word):
    top, arc_dir, flag = victim
    t = _Tar()
    t.special("dev", kind)
    _assert_refused(t.save(arc_dir / "dev.tar"), top, flag, capsys, word)


def test_tar_filter_error_becomes_download_error(victim, capsys, monkeypatch):
    """Whatever the stdlib filter still objects to comes back as DownloadError."""
    top, arc_dir, flag = victim
    t = _Tar()
    t.file("fine.txt", b"ok")
    archive = t.save(arc_dir / "fine.tar")

    def refuse(self, *a, **k):
        raise tarfile.LinkOutsideDestinationError(tarfile.TarInfo("fine.txt"), "/elsewhere")

    monkeypatch.setattr(tarfile.TarFile, "extractall", refuse)
    _assert_refused(archive, top, flag, capsys, "fine.txt")


def test_good_tar_and_zip_still_unpack(tmp_path):
    t = _Tar()
    t.dir("data")
    t.file("data/a.csv", b"x,1\n")
    out = zenodo.extract_archive(t.save(tmp_path / "good.tar"))
    assert (out / "data" / "a.csv").read_bytes() == b"x,1\n"
    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("inner/c.txt", "hello")
    (tmp_path / "good.zip").write_bytes(buf.getvalue())
    out = zenodo.extract_archive(tmp_path / "good.zip")
    assert (out / "inner" / "c.txt").read_text() == "hello"


def test_zip_names_checked(victim, capsys):
    top, arc_dir, flag = victim
    for i, name in enumerate(["../up.txt", "C:/x.txt", "/abs.txt"]):
        buf = _io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr(zipfile.ZipInfo(name), "pwned")
        archive = arc_dir / f"bad{i}.zip"
        archive.write_bytes(buf.getvalue())
        _assert_refused(archive, top, flag, capsys, "")
