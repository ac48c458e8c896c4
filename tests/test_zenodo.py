"""Tests of scziva_bench.data.zenodo against a local HTTP server imitating Zenodo (127.0.0.1 only)."""

import hashlib
import io as _io
import json
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scziva.errors import InputError
from scziva_bench.data import zenodo

FAST = dict(retries=3, backoff=0.01, timeout=5, progress=False)


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def _tar_gz(members: dict) -> bytes:
    buf = _io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(data, tuple):  # ("symlink", target)
                info.type, info.linkname = tarfile.SYMTYPE, data[1]
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, _io.BytesIO(data))
    return buf.getvalue()


def _zip(members: dict) -> bytes:
    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


GOOD = bytes(range(256)) * 40  # 10 KiB
OTHER = b"counts,1,2,3\n" * 50
FILES = {
    "good.bin": GOOD,
    "other.csv": OTHER,
    "badmd5.bin": b"this is not what the listing promised",
    "flaky.bin": GOOD[::-1],
    "cut.bin": GOOD * 3,
    "norange.bin": GOOD[:5000],
    "data.tar.gz": _tar_gz({"data/a.csv": b"x,1\n", "data/b.csv": b"y,2\n"}),
    "data2.zip": _zip({"inner/c.txt": b"hello"}),
    "evil.tar.gz": _tar_gz({"ok.txt": b"fine", "../evil": b"pwned"}),
    "evil.zip": _zip({"ok.txt": b"fine", "../../evil.txt": b"pwned"}),
    "abs.tar.gz": _tar_gz({"/tmp/abs_evil": b"pwned"}),
    "link.tar.gz": _tar_gz({"lnk": ("symlink", "../../etc/passwd")}),
}
LISTED_MD5 = {k: _md5(v) for k, v in FILES.items()}
LISTED_MD5["badmd5.bin"] = _md5(b"the real content")


class _State:
    def __init__(self):
        self.log = []  # (path, Range header)
        self.hits = {}
        self.auth = []  # (Host header, Authorization header)


class Handler(BaseHTTPRequestHandler):
    state: _State = None
    base: str = ""

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, code, body=b"", headers=None):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        st = self.state
        rng = self.headers.get("Range")
        st.log.append((self.path, rng))
        st.auth.append((self.headers.get("Host", ""), self.headers.get("Authorization")))
        n = st.hits[self.path] = st.hits.get(self.path, 0) + 1
        if self.path == "/api/records/123":
            files = [
                {"id": f"id-{k}", "key": k, "size": len(v), "checksum": "md5:" + LISTED_MD5[k],
                 "links": {"self": f"{self.base}/api/records/123/files/{k}/content"}}
                for k, v in FILES.items()
            ]
            body = json.dumps({"id": 123, "metadata": {"title": "toy"}, "files": files}).encode()
            return self._send(200, body, {"Content-Type": "application/json"})
        if self.path == "/api/records/456":  # InvenioRDM-style files dict, links.content
            body = json.dumps({"id": 456, "files": {"enabled": True, "entries": {
                "good.bin": {"key": "good.bin", "size": len(GOOD), "checksum": "md5:" + _md5(GOOD),
                             "links": {"self": f"{self.base}/meta/good.bin",
                                       "content": f"{self.base}/api/records/123/files/good.bin/content"}}}}})
            return self._send(200, body.encode(), {"Content-Type": "application/json"})
        if self.path == "/api/records/789":  # file links on another host name
            other = self.base.replace("127.0.0.1", "localhost")
            files = [{"key": k, "size": len(FILES[k]), "checksum": "md5:" + LISTED_MD5[k],
                      "links": {"self": f"{other}/api/records/123/files/{k}/content"}}
                     for k in ("good.bin", "other.csv")]
            return self._send(200, json.dumps({"id": 789, "files": files}).encode(),
                              {"Content-Type": "application/json"})
        if self.path == "/api/records/321":  # hostile keys and links
            files = [{"key": k, "size": 4, "checksum": "md5:" + _md5(b"abcd"),
                      "links": {"self": f"{self.base}/api/records/123/files/good.bin/content"}}
                     for k in ("x/..", "a/b.csv", "..", "ok.csv")]
            files.append({"key": "gopher.csv", "size": 4, "links": {"self": "file:///etc/passwd"}})
            files.append({"key": "star[1].csv", "size": len(OTHER), "checksum": "md5:" + _md5(OTHER),
                          "links": {"self": f"{self.base}/api/records/123/files/other.csv/content"}})
            files.append({"key": "star1.csv", "size": len(GOOD), "checksum": "md5:" + _md5(GOOD),
                          "links": {"self": f"{self.base}/api/records/123/files/good.bin/content"}})
            return self._send(200, json.dumps({"id": 321, "files": files}).encode(),
                              {"Content-Type": "application/json"})
        if self.path == "/redirect-to-http":
            self.send_response(302)
            self.send_header("Location", "http://example.invalid/x")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if self.path == "/nolength-cut":  # no Content-Length, connection closed early
            self.send_response(200)
            self.end_headers()
            self.wfile.write(GOOD[:1000])
            self.wfile.flush()
            self.close_connection = True
            return None
        if self.path.startswith("/api/records/18263992"):
            return self._send(404, b'{"status": 404, "message": "PID does not exist."}')
        prefix = "/api/records/123/files/"
        if not self.path.startswith(prefix):
            return self._send(404, b"not found")
        key = self.path[len(prefix):].removesuffix("/content")
        if key not in FILES:
            return self._send(404, b"not found")
        data = FILES[key]
        if key == "flaky.bin" and n == 1:
            return self._send(500, b"internal error")
        if key == "cut.bin" and n == 1:
            # promise everything, send a third, hang up
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 3])
            self.wfile.flush()
            self.close_connection = True
            return None
        if rng and key != "norange.bin":
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            return self._send(206, data[start:],
                              {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"})
        return self._send(200, data)


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Handler.base = f"http://127.0.0.1:{srv.server_address[1]}"
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield Handler.base
    srv.shutdown()
    srv.server_close()


@pytest.fixture()
def state(server):
    Handler.state = _State()
    return Handler.state


def _url(base, key):
    return f"{base}/api/records/123/files/{key}/content"


# ------------------------------------------------------------------ listing
def test_list_record_files_parses_listing(server, state):
    files = zenodo.list_record_files(123, api_url=server + "/api")
    by_key = {f["key"]: f for f in files}
    assert set(by_key) == set(FILES)
    assert by_key["good.bin"] == {"key": "good.bin", "size": len(GOOD), "checksum": _md5(GOOD),
                                  "url": _url(server, "good.bin")}


def test_list_record_files_invenio_shape_prefers_content_link(server, state):
    files = zenodo.list_record_files("456", api_url=server + "/api")
    assert files == [{"key": "good.bin", "size": len(GOOD), "checksum": _md5(GOOD),
                      "url": _url(server, "good.bin")}]


def test_missing_record_gives_clear_message(server, state):
    with pytest.raises(zenodo.DownloadError, match=r"record 18263992 was not found \(HTTP 404.*draft upload"):
        zenodo.list_record_files(zenodo.SCZIVA_RECORD, api_url=server + "/api")


# ------------------------------------------------------------------ single files
def test_good_file(server, state, tmp_path):
    dest = zenodo.download_file(_url(server, "good.bin"), tmp_path / "good.bin",
                                md5=_md5(GOOD), size=len(GOOD), **FAST)
    assert dest.read_bytes() == GOOD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.bin"]
    # present with the right MD5: no new request
    n = len(state.log)
    zenodo.download_file(_url(server, "good.bin"), dest, md5="md5:" + _md5(GOOD), **FAST)
    assert len(state.log) == n


def test_wrong_md5_fails_and_leaves_nothing(server, state, tmp_path):
    with pytest.raises(zenodo.DownloadError) as err:
        zenodo.download_file(_url(server, "badmd5.bin"), tmp_path / "badmd5.bin",
                             md5=LISTED_MD5["badmd5.bin"], **FAST)
    msg = str(err.value)
    assert "badmd5.bin" in msg and LISTED_MD5["badmd5.bin"] in msg and _md5(FILES["badmd5.bin"]) in msg
    assert isinstance(err.value, InputError)
    assert list(tmp_path.iterdir()) == []
    assert state.hits["/api/records/123/files/badmd5.bin/content"] == FAST["retries"] + 1


def test_server_error_once_then_success(server, state, tmp_path):
    data = FILES["flaky.bin"]
    dest = zenodo.download_file(_url(server, "flaky.bin"), tmp_path / "flaky.bin",
                                md5=_md5(data), size=len(data), **FAST)
    assert dest.read_bytes() == data
    assert state.hits["/api/records/123/files/flaky.bin/content"] == 2


def test_transfer_cut_midway_is_resumed(server, state, tmp_path):
    data = FILES["cut.bin"]
    dest = zenodo.download_file(_url(server, "cut.bin"), tmp_path / "cut.bin",
                                md5=_md5(data), size=len(data), **FAST)
    assert dest.read_bytes() == data
    ranges = [r for p, r in state.log if p.endswith("cut.bin/content")]
    assert ranges == [None, f"bytes={len(data) // 3}-"]  # second request continued the first


def test_resume_existing_part_with_range(server, state, tmp_path):
    part = tmp_path / "good.bin.part"
    part.write_bytes(GOOD[:1234])
    dest = zenodo.download_file(_url(server, "good.bin"), tmp_path / "good.bin",
                                md5=_md5(GOOD), size=len(GOOD), **FAST)
    assert dest.read_bytes() == GOOD and not part.exists()
    assert state.log == [("/api/records/123/files/good.bin/content", "bytes=1234-")]


def test_server_ignoring_range_restarts(server, state, tmp_path):
    data = FILES["norange.bin"]
    (tmp_path / "norange.bin.part").write_bytes(b"garbage" * 10)
    dest = zenodo.download_file(_url(server, "norange.bin"), tmp_path / "norange.bin",
                                md5=_md5(data), size=len(data), **FAST)
    assert dest.read_bytes() == data
    assert len(state.log) == 1  # one 200 answer replaced the stale part


def test_http_404_is_not_retried(server, state, tmp_path):
    with pytest.raises(zenodo.DownloadError, match="missing.bin: HTTP 404"):
        zenodo.download_file(_url(server, "nope"), tmp_path / "missing.bin", **FAST)
    assert len(state.log) == 1


def _closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_offline_gives_one_line_message(tmp_path):
    port = _closed_port()
    with pytest.raises(zenodo.OfflineError) as err:
        zenodo.download_file(f"http://127.0.0.1:{port}/x.bin", tmp_path / "x.bin", **FAST)
    msg = str(err.value)
    assert "\n" not in msg and "x.bin" in msg and "refused" in msg and "offline" in msg
    with pytest.raises(zenodo.OfflineError, match="cannot reach .*refused"):
        zenodo.list_record_files(1, api_url=f"http://127.0.0.1:{port}/api")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ records and archives
def test_fetch_record_downloads_extracts_and_skips(server, state, tmp_path):
    out = zenodo.fetch_record(123, tmp_path, api_url=server + "/api",
                              include=["good.bin", "*.csv", "data*"], **FAST)
    assert sorted(p.name for p in out) == ["data.tar.gz", "data2.zip", "good.bin", "other.csv"]
    assert (tmp_path / "other.csv").read_bytes() == OTHER
    assert (tmp_path / "data" / "data" / "a.csv").read_bytes() == b"x,1\n"
    assert (tmp_path / "data2" / "inner" / "c.txt").read_bytes() == b"hello"
    n_files = sum(1 for p, _ in state.log if "/files/" in p)
    assert n_files == 4
    # second run: only the listing is asked for
    zenodo.fetch_record(123, tmp_path, api_url=server + "/api",
                        include=["good.bin", "*.csv", "data*"], **FAST)
    assert sum(1 for p, _ in state.log if "/files/" in p) == n_files
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize("key,member", [("evil.tar.gz", "../evil"), ("evil.zip", "../../evil.txt"),
                                        ("abs.tar.gz", "/tmp/abs_evil"), ("link.tar.gz", "lnk")])
def test_malicious_archives_rejected(server, state, tmp_path, key, member):
    dest = tmp_path / "dl"
    with pytest.raises(zenodo.DownloadError) as err:
        zenodo.fetch_record(123, dest, api_url=server + "/api", include=[key], **FAST)
    assert key in str(err.value) and repr(member) in str(err.value)
    # the archive itself is there; nothing was unpacked anywhere
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(["dl", key])


def test_no_match_for_include(server, state, tmp_path):
    with pytest.raises(zenodo.DownloadError, match="no file matches"):
        zenodo.fetch_record(123, tmp_path, api_url=server + "/api", include=["*.h5ad"], **FAST)


def test_cli(server, state, tmp_path, capsys):
    rc = zenodo.main(["123", str(tmp_path), "--include", "other.csv", "--api-url", server + "/api"])
    assert rc == 0 and (tmp_path / "other.csv").read_bytes() == OTHER
    rc = zenodo.main([zenodo.SCZIVA_RECORD, str(tmp_path), "--api-url", server + "/api"])
    assert rc == 1 and "18263992" in capsys.readouterr().err


def test_offline_message_names_dns_failure():
    exc = ConnectionError("HTTPSConnectionPool: Failed to resolve 'zenodo.org' "
                          "([Errno -3] Temporary failure in name resolution)")
    msg = zenodo._offline_message("https://zenodo.org/api/records/1", exc)
    assert "DNS failure" in msg and "offline" in msg and "\n" not in msg


def test_offline_with_stale_part_still_says_offline(tmp_path):
    port = _closed_port()
    (tmp_path / "y.bin.part").write_bytes(b"half")
    with pytest.raises(zenodo.OfflineError, match="y.bin: cannot reach .*refused"):
        zenodo.download_file(f"http://127.0.0.1:{port}/y.bin", tmp_path / "y.bin", size=10, **FAST)
    assert (tmp_path / "y.bin.part").read_bytes() == b"half"  # kept for a later resume
    assert not (tmp_path / "y.bin").exists()


# ------------------------------------------------------------------ transport (issue 9)
@pytest.mark.parametrize("url", ["http://zenodo.org/api", "file:///etc", "ftp://zenodo.org/api",
                                 "zenodo.org/api", "", "https://"])
def test_only_https_api_addresses(url, state):
    with pytest.raises(zenodo.DownloadError) as err:
        zenodo.list_record_files(1, api_url=url, token="SECRET")
    msg = str(err.value)
    assert "\n" not in msg and "https" in msg, msg
    assert state.log == []  # nothing was sent anywhere


@pytest.mark.parametrize("url", ["http://example.org/x.bin", "file:///etc/passwd", "ftp://example.org/x",
                                 "example.org/x.bin", "//example.org/x"])
def test_only_https_file_addresses(url, tmp_path):
    with pytest.raises(zenodo.DownloadError) as err:
        zenodo.download_file(url, tmp_path / "x.bin", token="SECRET", **FAST)
    assert "\n" not in str(err.value) and "https" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_loopback_http_allowed(server, state, tmp_path):
    for host in ("127.0.0.1", "localhost"):
        url = _url(server, "good.bin").replace("127.0.0.1", host)
        zenodo.download_file(url, tmp_path / host / "good.bin", md5=_md5(GOOD), **FAST)
    assert zenodo._check_url("http://[::1]:8080/api", "t") is None


def test_redirect_to_plain_http_is_refused(server, state, tmp_path):
    with pytest.raises(zenodo.DownloadError, match="https"):
        zenodo.download_file(server + "/redirect-to-http", tmp_path / "r.bin", **FAST)
    assert len(state.log) == 1


def test_token_only_sent_to_the_api_host(server, state, tmp_path):
    out = zenodo.fetch_record(789, tmp_path, api_url=server + "/api", token="SECRET", **FAST)
    assert sorted(p.name for p in out) == ["good.bin", "other.csv"]
    sent = {(host.split(":")[0], auth) for host, auth in state.auth}
    assert ("127.0.0.1", "Bearer SECRET") in sent  # the listing, on the API host
    assert ("localhost", None) in sent and ("localhost", "Bearer SECRET") not in sent


def test_no_checksum_no_size_never_resumes_a_stale_part(server, state, tmp_path):
    (tmp_path / "good.bin.part").write_bytes(b"stale bytes from some other file")
    dest = zenodo.download_file(_url(server, "good.bin"), tmp_path / "good.bin", **FAST)
    assert dest.read_bytes() == GOOD
    assert [r for _, r in state.log] == [None]  # downloaded in full, no Range


def test_no_checksum_no_size_cut_short_is_refused(server, state, tmp_path):
    with pytest.raises(zenodo.DownloadError) as err:
        zenodo.download_file(server + "/nolength-cut", tmp_path / "cut.bin", **FAST)
    assert "\n" not in str(err.value) and "cut.bin" in str(err.value)
    assert not (tmp_path / "cut.bin").exists()


def test_hostile_record_keys_refused(server, state, tmp_path):
    for key in ("x/..", "a/b.csv", ".."):
        with pytest.raises(zenodo.DownloadError) as err:
            zenodo.fetch_record(321, tmp_path / "dl", api_url=server + "/api", names=[key], **FAST)
        assert repr(key) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(zenodo.DownloadError, match="https"):
        zenodo.fetch_record(321, tmp_path / "dl", api_url=server + "/api", names=["gopher.csv"], **FAST)
    assert not (tmp_path / "dl").exists() or list((tmp_path / "dl").iterdir()) == []


def test_configured_names_are_matched_literally(server, state, tmp_path):
    out = zenodo.fetch_record(321, tmp_path, api_url=server + "/api", names=["star[1].csv"], **FAST)
    assert [p.name for p in out] == ["star[1].csv"] and out[0].read_bytes() == OTHER
    with pytest.raises(zenodo.DownloadError, match="no file named"):
        zenodo.fetch_record(123, tmp_path, api_url=server + "/api", names=["*.csv"], **FAST)


def test_workflow_script_matches_the_file_name_literally():
    from pathlib import Path
    script = (Path(__file__).resolve().parents[1] / "workflow" / "scripts" / "download_zenodo.py").read_text()
    assert "names=[name]" in script and "include=" not in script


def test_disk_full_during_download_is_one_line(server, state, tmp_path, monkeypatch):
    import builtins
    import errno

    real_open = builtins.open

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.fh.close()

        def write(self, b):
            raise OSError(errno.ENOSPC, "No space left on device")

    def fake_open(path, mode="r", *a, **k):
        fh = real_open(path, mode, *a, **k)
        return Full(fh) if str(path).endswith(".part") and "b" in mode and "r" not in mode else fh

    monkeypatch.setattr(builtins, "open", fake_open)
    with pytest.raises(zenodo.DownloadError) as err:
        zenodo.download_file(_url(server, "good.bin"), tmp_path / "good.bin", md5=_md5(GOOD), **FAST)
    msg = str(err.value)
    assert "\n" not in msg and "good.bin" in msg and "space" in msg.lower(), msg
    assert not (tmp_path / "good.bin").exists()
    assert len(state.log) == 1  # a full disk is not retried


def test_cli_gives_one_line_for_a_bad_api_address(tmp_path, capsys):
    rc = zenodo.main(["1", str(tmp_path), "--api-url", "ftp://zenodo.org/api"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 1 and len(err) == 1 and "https" in err[0]


@pytest.mark.parametrize("kind", ["chain", "cve"])
def test_cli_refuses_link_attacks_end_to_end(server, state, tmp_path, capsys, monkeypatch, kind):
    """``python -m scziva_bench.data.zenodo RECORD DIR`` on a record whose archive writes
    outside DIR through links: exit 1, one line, the file outside untouched."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    import test_security as ts

    top = tmp_path / "top"
    dest = top / "dl"
    dest.mkdir(parents=True)
    flag = top / "flag"
    flag.write_bytes(b"original")
    build = tmp_path / "build"
    build.mkdir()
    archive = ts._simple_chain(build) if kind == "chain" else ts._path_max_attack(dest)
    data = archive.read_bytes()
    archive.unlink()
    monkeypatch.setitem(FILES, "payload.tar", data)
    monkeypatch.setitem(LISTED_MD5, "payload.tar", _md5(data))
    rc = zenodo.main(["123", str(dest), "--file", "payload.tar", "--api-url", server + "/api"])
    text = capsys.readouterr().err
    assert "Traceback" not in text
    err = [ln for ln in text.splitlines() if ln.strip() and "%|" not in ln]  # not the progress bar
    assert rc == 1 and len(err) == 1 and "payload.tar" in err[0] and "link" in err[0], err
    assert flag.read_bytes() == b"original"
    assert sorted(p.name for p in top.rglob("*")) == ["dl", "flag", "payload.tar"]
