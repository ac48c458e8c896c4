"""Download the files of a Zenodo record: resumable, checksum-verified, safely unpacked.

* :func:`list_record_files` asks Zenodo's REST API (``GET {api}/records/{id}``) for a
  record's files (name, size, MD5, download URL).
* :func:`download_file` streams one URL into ``dest + ".part"``, resumes an existing
  ``.part`` with an HTTP ``Range`` request, checks size and MD5, and only then moves the
  file into place with ``os.replace`` (a file under its final name is always complete).
* :func:`fetch_record` does both for a whole record, skips files already present with
  the right MD5, and unpacks ``.zip`` / ``.tar.*`` archives inside their own folder.

Why plain ``requests`` rather than pooch: pooch verifies hashes but restarts every
failed transfer from byte zero and gives no hook for ``Range`` resumes or for telling a
server that ignored ``Range`` (200 instead of 206) from one that honoured it; with
``requests`` the whole state machine fits in one short function.

Command line: ``python -m scziva_bench.data.zenodo RECORD_ID DEST_DIR [--include PATTERN ...]``.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import os
import re
import sys
import tarfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urljoin, urlsplit

import requests
from tqdm.auto import tqdm

from scziva.errors import InputError
from scziva.fileio import atomic_dir

__all__ = [
    "DownloadError",
    "OfflineError",
    "list_record_files",
    "download_file",
    "fetch_record",
    "extract_archive",
    "md5sum",
    "ZENODO_API",
    "SCZIVA_RECORD",
]

ZENODO_API = "https://zenodo.org/api"
#: The record the scZiva authors' README names (as a draft-upload link).
SCZIVA_RECORD = "18263992"

_CHUNK = 1 << 20
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar")


class DownloadError(InputError):
    """A download or archive could not be used (message names the file and why)."""


class OfflineError(DownloadError):
    """The server could not be reached at all (no network, DNS failure, refused)."""


class _Retry(Exception):
    """A transient failure: try again after a pause."""


# --------------------------------------------------------------------------- helpers
def md5sum(path, chunk: int = _CHUNK) -> str:
    """Hex MD5 of a file, read in chunks."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _offline_message(url: str, exc: Exception) -> str:
    text = str(exc)
    low = text.lower()
    if any(s in low for s in ("name or service not known", "nodename nor servname", "getaddrinfo",
                              "name resolution", "temporary failure in name", "no address associated")):
        why = "the host name could not be resolved (DNS failure)"
    elif "refused" in low:
        why = "the connection was refused"
    elif "timed out" in low or "timeout" in low:
        why = "the connection timed out"
    else:
        why = f"the connection failed ({type(exc).__name__})"
    return (f"cannot reach {url}: {why}; are you offline? Download the file by hand and "
            "put it where the workflow expects it, or try again later")


_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _check_url(url, what: str) -> None:
    """Raise :class:`DownloadError` unless ``url`` is https (plain http only for a
    loopback host: 127.0.0.1, ::1, localhost, e.g. a local stand-in in tests)."""
    try:
        parts = urlsplit(str(url))
        host = (parts.hostname or "").lower()
        scheme = parts.scheme.lower()
    except ValueError as exc:
        raise DownloadError(f"{what}: {url!r} is not a valid address ({exc})") from None
    if scheme == "https" and host:
        return None
    if scheme == "http" and host in _LOOPBACK:
        return None
    if scheme == "http":
        why = "uses plain http, which would send the data (and any token) unencrypted"
    elif not scheme:
        why = "has no scheme"
    elif not host:
        why = "names no host"
    else:
        why = f"uses {scheme}://"
    raise DownloadError(f"{what}: {url!r} {why}; only https:// addresses are accepted "
                        "(http:// only for 127.0.0.1, ::1 or localhost)")


def _origin(url) -> tuple:
    parts = urlsplit(str(url))
    return (parts.scheme.lower(), (parts.hostname or "").lower(), parts.port)


def _redirect_guard(r, *args, **kwargs):
    """A response hook: follow a redirect only to an address :func:`_check_url` accepts."""
    if r.is_redirect:
        _check_url(urljoin(r.url, r.headers.get("location", "")), f"redirect from {r.url}")
    return r


def _session(token: str | None = None) -> requests.Session:
    """A session for one host. ``token`` goes into its headers: callers pass it only
    for the API host (requests drops it on a redirect to another host)."""
    s = requests.Session()
    # identity: Range offsets and Content-Length must count the bytes we store.
    s.headers.update({"Accept-Encoding": "identity", "User-Agent": "scziva-bench"})
    s.hooks["response"].append(_redirect_guard)
    if token:
        s.headers["Authorization"] = f"Bearer {token}"
    return s


# --------------------------------------------------------------------------- listing
def _parse_files(record: dict, record_id: str, api_url: str) -> list[dict]:
    files = record.get("files")
    if isinstance(files, dict):  # InvenioRDM serialisation: {"enabled":..., "entries": {...}}
        entries = files.get("entries") or {}
        files = list(entries.values()) if isinstance(entries, dict) else list(entries)
    if not files:
        return []
    out = []
    for f in files:
        key = f.get("key") or f.get("filename")
        if not key:
            continue
        size = f.get("size", f.get("filesize"))
        checksum = f.get("checksum") or ""
        algo, _, digest = checksum.partition(":") if ":" in checksum else ("md5", "", checksum)
        md5 = digest.lower() if algo.lower() == "md5" and digest else None
        links = f.get("links") or {}
        url = links.get("content") or links.get("download") or links.get("self")
        if not url:
            url = f"{api_url.rstrip('/')}/records/{record_id}/files/{quote(key)}/content"
        out.append({"key": key, "size": int(size) if size is not None else None,
                    "checksum": md5, "url": url})
    return out


def list_record_files(record_id, api_url: str = ZENODO_API, timeout: float = 60,
                      token: str | None = None) -> list[dict]:
    """Files of a published Zenodo record.

    Returns a list of ``{"key", "size", "checksum", "url"}`` dicts, ``checksum`` the hex
    MD5 (``None`` when Zenodo gives another algorithm). ``token`` (a personal access
    token) is only needed for restricted or draft records.
    """
    record_id = str(record_id).strip()
    _check_url(api_url, "Zenodo API address")
    if not record_id or not all(ch.isalnum() or ch in "-_." for ch in record_id) or record_id in (".", ".."):
        raise DownloadError(f"Zenodo record id {record_id!r} is not a record id (letters, digits, '-', '_')")
    url = f"{api_url.rstrip('/')}/records/{record_id}"
    try:
        with _session(token) as s:
            r = s.get(url, timeout=timeout, headers={"Accept": "application/json"})
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise OfflineError(_offline_message(url, exc)) from None
    if r.status_code in (401, 403, 404, 410):
        hint = ""
        if record_id == SCZIVA_RECORD:
            hint = (" (the scZiva authors' README links it as a draft upload, which only its "
                    "owners can see until it is published)")
        what = {401: "needs a login", 403: "is not public", 404: "was not found",
                410: "has been removed"}[r.status_code]
        raise DownloadError(
            f"Zenodo record {record_id} {what} (HTTP {r.status_code} from {url}){hint}; "
            "use a published record id, or download the data by hand and read it with "
            "scziva_bench.data.io.read_counts"
        )
    if r.status_code >= 400:
        raise DownloadError(f"Zenodo record {record_id}: HTTP {r.status_code} from {url}")
    try:
        record = r.json()
    except ValueError:
        raise DownloadError(f"Zenodo record {record_id}: {url} did not return JSON") from None
    files = _parse_files(record, record_id, api_url)
    if not files:
        raise DownloadError(f"Zenodo record {record_id} lists no downloadable files at {url}")
    return files


# --------------------------------------------------------------------------- download
def _transfer(session, url, part: Path, size, timeout, progress, name, resume: bool = True):
    """One attempt: continue ``part`` from where it ends (from zero when ``resume`` is
    false). Raises _Retry on transient trouble."""
    if not resume:
        part.unlink(missing_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    if size is not None and have == size and have > 0:
        return  # already complete: verify only
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with session.get(url, stream=True, timeout=timeout, headers=headers) as r:
            if r.status_code == 416:  # our .part is not a prefix the server can continue
                part.unlink(missing_ok=True)
                raise _Retry(f"HTTP 416 for a resume of {name}; restarting from zero")
            if r.status_code in _RETRY_STATUS:
                raise _Retry(f"HTTP {r.status_code} from {url}")
            if r.status_code >= 400:
                raise DownloadError(f"{name}: HTTP {r.status_code} from {url}")
            start = 0
            if have and r.status_code == 206:
                crange = r.headers.get("Content-Range", "")
                try:
                    start = int(crange.split()[1].split("-")[0])
                except (IndexError, ValueError):
                    start = -1
                if start != have:  # a range we did not ask for: start over
                    part.unlink(missing_ok=True)
                    raise _Retry(f"server answered a resume of {name} with Content-Range {crange!r}")
            # 200 (also when we asked for a range the server ignored): restart the file.
            mode = "ab" if start else "wb"
            # urllib3 raises IncompleteRead on a short body while still holding the bytes
            # it buffered, which would then be lost; let it hand them over instead, and
            # detect the short transfer ourselves below (the bytes stay in .part).
            if hasattr(r.raw, "enforce_content_length"):
                r.raw.enforce_content_length = False
            length = r.headers.get("Content-Length")
            expected = start + int(length) if length is not None else size
            if expected is None and not resume:
                # no checksum, no size, no length: a cut-short body could not be told apart
                raise DownloadError(f"{name}: {url} gives no size (no Content-Length) and the "
                                    "record lists neither MD5 nor size, so a complete download "
                                    "cannot be told from a truncated one; refusing it")
            bar = tqdm(total=expected, initial=start, unit="B", unit_scale=True,
                       unit_divisor=1024, desc=name, disable=not progress, leave=False)
            try:
                with open(part, mode) as fh:
                    for block in r.iter_content(_CHUNK):
                        fh.write(block)
                        bar.update(len(block))
            except OSError as exc:  # ENOSPC, EDQUOT, EIO, ... (not a network error)
                if isinstance(exc, requests.RequestException):
                    raise
                raise DownloadError(_disk_message(name, part, exc)) from None
            finally:
                bar.close()
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError,
            requests.exceptions.ReadTimeout) as exc:
        raise _Retry(f"transfer of {name} interrupted ({type(exc).__name__})") from None
    got = part.stat().st_size
    if expected is not None and got < expected:
        raise _Retry(f"transfer of {name} cut short ({got} of {expected} bytes)")


def _disk_message(name: str, path: Path, exc: OSError) -> str:
    why = exc.strerror or type(exc).__name__
    return (f"{name}: cannot write {path} ({why}); free some disk space (or choose another "
            "folder) and run again: the bytes already downloaded are kept and resumed")


def download_file(url, dest, md5: str | None = None, size: int | None = None, retries: int = 4,
                  backoff: float = 1.0, timeout: float = 60, progress: bool = True,
                  token: str | None = None) -> Path:
    """Download ``url`` to ``dest``, resumably, verifying ``size`` and ``md5`` when given.

    Data go to ``dest + ".part"``; an existing ``.part`` is continued with a ``Range``
    request (if the server answers 200 instead of 206 the file restarts from zero). On
    a 5xx/429 answer, a broken or short transfer, or a connection error, the attempt is
    repeated after ``backoff * 2**k`` seconds, ``retries`` times at most. A wrong MD5
    deletes the ``.part`` and retries; if it stays wrong, :class:`DownloadError` names
    the file and both checksums. A host that cannot be reached at all gives
    :class:`OfflineError` with a one-line message. ``dest`` is returned; it exists only
    once complete and verified. An existing ``dest`` with the right MD5 (or, without an
    MD5, the right size) is kept as it is.
    """
    dest = Path(dest)
    name = dest.name
    _check_url(url, name)
    md5 = md5.lower().removeprefix("md5:") if md5 else None
    # Nothing to verify a resumed file against: always download it in full.
    resume = bool(md5) or size is not None
    if dest.is_file():
        if (md5 and md5sum(dest) == md5) or (not md5 and size is not None and dest.stat().st_size == size):
            return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"{name}: cannot create the folder {dest.parent} ({exc.strerror})") from None
    part = dest.with_name(dest.name + ".part")
    last = None
    bad_md5 = None
    with _session(token) as session:
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(backoff * 2 ** (attempt - 1))
            before = part.stat().st_size if part.exists() else 0
            try:
                _transfer(session, url, part, size, timeout, progress, name, resume=resume)
            except _Retry as exc:
                last = str(exc)
                continue
            except (requests.ConnectionError, requests.Timeout) as exc:
                if part.exists() and part.stat().st_size != before:  # broke mid-way: not "offline"
                    last = f"transfer of {name} interrupted ({type(exc).__name__})"
                    continue
                last = _offline_message(url, exc)
                if attempt == retries:
                    raise OfflineError(f"{name}: {last}") from None
                continue
            got_size = part.stat().st_size
            if size is not None and got_size != size:
                part.unlink()
                last = f"{name}: got {got_size} bytes, expected {size}"
                continue
            if md5:
                got = md5sum(part)
                if got != md5:
                    part.unlink()
                    bad_md5 = got
                    last = f"{name}: MD5 {got} does not match the expected {md5}"
                    continue
            try:
                os.replace(part, dest)
            except OSError as exc:
                raise DownloadError(_disk_message(name, dest, exc)) from None
            return dest
    if not resume:
        part.unlink(missing_ok=True)  # never kept: it could not be checked later either
    if bad_md5 is not None and last and "MD5" in last:
        raise DownloadError(
            f"{name}: checksum mismatch after {retries + 1} attempt(s) from {url}: expected MD5 "
            f"{md5}, got {bad_md5}; the corrupt download was deleted"
        )
    raise DownloadError(f"{name}: download from {url} failed after {retries + 1} attempt(s): {last}")


# --------------------------------------------------------------------------- archives
def _archive_stem(name: str) -> str | None:
    low = name.lower()
    for suf in _ARCHIVE_SUFFIXES:
        if low.endswith(suf):
            return name[: -len(suf)]
    return None


_DRIVE = re.compile(r"^[A-Za-z]:")


def _check_name(member: str, where: str) -> PurePosixPath:
    """A relative, ``..``-free POSIX path for an archive member or record key, or
    :class:`DownloadError`. Checked on the name alone, before anything touches the disk:
    no absolute path, no drive letter, no ``..`` component, no backslash, no control
    character, not empty."""
    if not isinstance(member, str) or not member.strip("/"):
        raise DownloadError(f"{where}: member {member!r} has an empty name; refusing to unpack")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in member):
        raise DownloadError(f"{where}: member {member!r} has a control character in its name; "
                            "refusing to unpack")
    if "\\" in member:
        raise DownloadError(f"{where}: member {member!r} has a backslash in its name; refusing to unpack")
    if member.startswith("/") or _DRIVE.match(member):
        raise DownloadError(f"{where}: member {member!r} has an absolute path; refusing to unpack")
    pure = PurePosixPath(member)
    if ".." in pure.parts:
        raise DownloadError(f"{where}: member {member!r} has a '..' component and could be "
                            "written outside the folder; refusing to unpack")
    return pure


def _safe_target(root: Path, member: str, archive: Path) -> Path:
    pure = _check_name(member, archive.name)
    target = root / pure
    # second line of defence: nothing under root may already be a link we would follow
    if target.resolve() != root.resolve() and root.resolve() not in target.resolve().parents:
        raise DownloadError(f"{archive.name}: member {member!r} would be written outside "
                            f"{root}; refusing to unpack")
    return target


def _check_members(archive: Path, root: Path):
    """Validate every member before anything is written; return the opener kind.

    Only regular files and folders are accepted: every symbolic or hard link is refused
    (whatever it points to: link chains and links through links defeat any lexical
    check, CVE-2025-4517), and so is every device, fifo or socket.
    """
    if zipfile.is_zipfile(archive):
        try:
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise DownloadError(f"{archive.name}: not a readable zip archive ({exc})") from None
        for info in infos:
            _safe_target(root, info.filename, archive)
            kind = (info.external_attr >> 16) & 0o170000
            if kind == 0o120000:
                raise DownloadError(f"{archive.name}: member {info.filename!r} is a symbolic link; "
                                    "refusing to unpack")
            if kind not in (0, 0o100000, 0o040000):
                raise DownloadError(f"{archive.name}: member {info.filename!r} is a device, fifo or "
                                    "socket; refusing to unpack")
        return "zip"
    try:
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DownloadError(f"{archive.name}: not a readable zip or tar archive ({exc})") from None
    for m in members:
        _safe_target(root, m.name, archive)
        if m.issym():
            raise DownloadError(f"{archive.name}: member {m.name!r} is a symbolic link (to "
                                f"{m.linkname!r}); refusing to unpack archives with links")
        if m.islnk():
            raise DownloadError(f"{archive.name}: member {m.name!r} is a hard link (to "
                                f"{m.linkname!r}); refusing to unpack archives with links")
        if m.ischr() or m.isblk():
            raise DownloadError(f"{archive.name}: member {m.name!r} is a device; refusing to unpack")
        if m.isfifo():
            raise DownloadError(f"{archive.name}: member {m.name!r} is a fifo; refusing to unpack")
        if not (m.isfile() or m.isdir()):
            raise DownloadError(f"{archive.name}: member {m.name!r} is not a regular file or "
                                "folder; refusing to unpack")
    return "tar"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def extract_archive(archive, dest_dir=None) -> Path:
    """Unpack a ``.zip`` / ``.tar[.gz|.bz2|.xz]`` into ``dest_dir`` (default: beside it,
    in a folder named after the archive) and return that folder.

    Every member is checked first (see :func:`_check_members`): absolute paths, drive
    letters, ``..``, links of any kind, devices and fifos raise :class:`DownloadError`
    naming the member, and then nothing at all is written. Unpacking goes to a temporary
    folder renamed into place, so the folder exists only when complete. Any error of the
    unpacking itself (the stdlib's ``tarfile`` filter, a full disk) is a
    :class:`DownloadError` too, and the temporary folder is removed.
    """
    archive = Path(archive)
    if dest_dir is None:
        stem = _archive_stem(archive.name) or archive.name + "_files"
        dest_dir = archive.parent / stem
    dest_dir = Path(dest_dir)
    with atomic_dir(dest_dir) as tmp:
        kind = _check_members(archive, tmp)
        try:
            if kind == "zip":
                with zipfile.ZipFile(archive) as zf:
                    zf.extractall(tmp)
            else:
                with tarfile.open(archive) as tf:
                    tf.extractall(tmp, filter="data")  # a second guard, after our own checks
        except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise DownloadError(f"{archive.name}: cannot be unpacked into {dest_dir} "
                                f"({_one_line(exc)}); nothing was kept") from None
    return dest_dir


# --------------------------------------------------------------------------- records
def _check_key(key, record_id) -> str:
    """A record's file key as a plain file name (no folder, no '..'), or DownloadError."""
    where = f"Zenodo record {record_id}"
    if not isinstance(key, str) or "/" in key or "\\" in key or key in (".", ".."):
        raise DownloadError(f"{where}: file key {key!r} is not a plain file name (it contains a "
                            "folder part or is '.'/'..'); refusing to download it")
    _check_name(key, where)
    return key


def fetch_record(record_id, dest_dir, api_url: str = ZENODO_API, include=None, extract: bool = True,
                 retries: int = 4, backoff: float = 1.0, timeout: float = 60, progress: bool = True,
                 token: str | None = None, names=None) -> list[Path]:
    """Download the files of a Zenodo record into ``dest_dir``; return their paths.

    ``names``: exact file names to download (matched literally; each must exist).
    ``include``: file names or glob patterns (``["*.csv", "Lung.csv"]``) to restrict the
    download. Files already present with the right MD5 are not downloaded again.
    Archives are unpacked (see :func:`extract_archive`) into ``dest_dir/<archive name
    without extension>/`` unless that folder exists already. Every file address must be
    https (see :func:`_check_url`); ``token`` is sent only to the API's own host.
    """
    dest_dir = Path(dest_dir)
    files = list_record_files(record_id, api_url=api_url, timeout=timeout, token=token)
    if names is not None:
        wanted = [names] if isinstance(names, str) else list(names)
        by_key = {f["key"]: f for f in files}
        missing = [n for n in wanted if n not in by_key]
        if missing:
            raise DownloadError(f"Zenodo record {record_id}: no file named {missing[0]!r} "
                                f"(files: {', '.join(repr(k) for k in list(by_key)[:10])})")
        files = [by_key[n] for n in dict.fromkeys(wanted)]
    if include is not None:
        pats = [include] if isinstance(include, str) else list(include)
        files = [f for f in files if any(f["key"] == p or fnmatch.fnmatchcase(f["key"], p) for p in pats)]
        if not files:
            raise DownloadError(f"Zenodo record {record_id}: no file matches {pats}")
    for f in files:  # check every key and address before downloading anything
        _check_key(f["key"], record_id)
        _check_url(f["url"], f"Zenodo record {record_id}, file {f['key']!r}")
    api_origin = _origin(api_url)
    out = []
    for f in files:
        key = f["key"]
        dest = _safe_target(dest_dir.resolve(), key, Path(f"record {record_id}"))
        download_file(f["url"], dest, md5=f["checksum"], size=f["size"], retries=retries,
                      backoff=backoff, timeout=timeout, progress=progress,
                      token=token if _origin(f["url"]) == api_origin else None)
        out.append(dest)
        stem = _archive_stem(dest.name)
        if extract and stem and not (dest.parent / stem).exists():
            extract_archive(dest, dest.parent / stem)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scziva_bench.data.zenodo",
                                 description="Download (and unpack) the files of a Zenodo record.")
    ap.add_argument("record", help=f"record id (the scZiva authors name {SCZIVA_RECORD})")
    ap.add_argument("dest", help="destination folder")
    ap.add_argument("--include", nargs="*", default=None, help="glob patterns of file names")
    ap.add_argument("--file", nargs="*", default=None, dest="names",
                    help="exact file names (matched literally)")
    ap.add_argument("--api-url", default=ZENODO_API)
    ap.add_argument("--no-extract", action="store_true")
    ap.add_argument("--token", default=os.environ.get("ZENODO_TOKEN") or None,
                    help="access token for restricted or draft records (default: $ZENODO_TOKEN)")
    args = ap.parse_args(argv)
    try:
        paths = fetch_record(args.record, args.dest, api_url=args.api_url, include=args.include,
                             extract=not args.no_extract, token=args.token, names=args.names)
    except InputError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except OSError as exc:  # anything the download and unpack steps did not name themselves
        print(f"error: {exc.filename or args.dest}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
