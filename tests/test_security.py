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

from scziva_bench.data import zenodo


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


# ----------------------------------------------------------------------------- workflow scripts
REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "workflow" / "scripts"
RULE_SCRIPTS = sorted(p for p in SCRIPTS.glob("*.py") if not p.name.startswith("_"))


def _preamble(script: Path) -> str:
    """A script's lines up to and including ``import _bootstrap`` (its import-path part)."""
    lines = script.read_text().splitlines()
    end = next((i for i, ln in enumerate(lines) if ln.startswith("import _bootstrap")), None)
    assert end is not None, f"{script.name} does not import _bootstrap"
    return "\n".join(lines[: end + 1]) + "\n"


def _fake_checkout(root: Path, tag: str) -> Path:
    """A checkout with the real workflow/scripts/_bootstrap.py and marker packages."""
    (root / "workflow" / "rules").mkdir(parents=True)
    (root / "workflow" / "scripts").mkdir()
    (root / "workflow" / "scripts" / "_bootstrap.py").write_bytes((SCRIPTS / "_bootstrap.py").read_bytes())
    for pkg in ("scziva", "scziva_bench"):
        (root / "src" / pkg).mkdir(parents=True)
        (root / "src" / pkg / "__init__.py").write_text(f"TAG = {tag!r}\n")
    return root


@pytest.mark.parametrize("script", RULE_SCRIPTS, ids=lambda p: p.name)
def test_every_script_imports_its_own_checkout(tmp_path, script):
    """Run each script's import-path lines as Snakemake would (from a copy elsewhere,
    ``scriptdir`` spelled ``workflow/rules/../scripts``) with another checkout's
    packages first on PYTHONPATH: the packages must come from the script's checkout."""
    import subprocess
    import sys

    mine = _fake_checkout(tmp_path / "mine", "mine")
    other = _fake_checkout(tmp_path / "other", "other")
    runner = tmp_path / "job" / "tmpscript.py"  # Snakemake's copy lives elsewhere
    runner.parent.mkdir()
    scriptdir = str(mine / "workflow" / "rules" / ".." / "scripts")
    runner.write_text(
        "import types\n"
        f"snakemake = types.SimpleNamespace(scriptdir={scriptdir!r})\n"
        + _preamble(script)
        + "import scziva, scziva_bench, os\n"
        "print(scziva.TAG, scziva_bench.TAG, os.environ['PYTHONPATH'].split(os.pathsep)[0])\n"
    )
    env = dict(os.environ, PYTHONPATH=str(other / "src"))
    res = subprocess.run([sys.executable, str(runner)], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["mine", "mine", str((mine / "src").resolve())], res.stdout


def test_bootstrap_refuses_a_copy_imported_before_it(tmp_path):
    import subprocess
    import sys

    mine = _fake_checkout(tmp_path / "mine", "mine")
    other = _fake_checkout(tmp_path / "other", "other")
    code = (f"import sys; sys.path.insert(0, {str(other / 'src')!r}); import scziva; "
            f"sys.path.insert(0, {str(mine / 'workflow' / 'scripts')!r}); import _bootstrap")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         timeout=60, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode != 0 and len(err) == 1 and "scziva" in err[0] and "other" in err[0], res.stderr


@pytest.mark.slow
def test_workflow_in_a_copy_runs_the_copys_code(tmp_path):
    """Copy the repository, break ``no_imputation`` in the copy only, run the copy's
    workflow (with this checkout first on PYTHONPATH, as a developer's shell has it):
    the copy's broken method must be what ran."""
    import shutil
    import subprocess

    from slurm import runs

    reason = runs.workflow_missing()
    if reason:
        pytest.skip(reason)
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z"],
                            capture_output=True, text=True, check=True).stdout.split("\0")
    copy = tmp_path / "copy"
    for rel in filter(None, listed):
        src = REPO / rel
        if rel.startswith(".venv") or not src.is_file():
            continue
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, copy / rel)
    controls = copy / "src" / "scziva_bench" / "methods" / "controls.py"
    text = controls.read_text()
    marker = "BROKEN-IN-THE-COPY-7f3a"
    needle = "def _no_imputation(counts, *, seed, device, adata):\n"
    assert needle in text
    controls.write_text(text.replace(needle, needle + f"    raise RuntimeError({marker!r})\n"))
    cfg = runs.mini_config(methods=("no_imputation",))
    cfg.pop("figures", None)
    cfgfile = runs.write_config(cfg, tmp_path / "config.yaml")
    wd = tmp_path / "run"
    wd.mkdir()
    env = runs.base_env(PYTHONPATH=str(REPO / "src"))
    cmd = [str(runs.SNAKEMAKE), "-s", str(copy / "Snakefile"), "-d", str(wd), "--configfile", str(cfgfile),
           "--workflow-profile", "none", "--cores", "2", "--nocolor", "results/metrics.tsv"]
    res = subprocess.run(cmd, cwd=wd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=300)
    runs.check(res, "the copy's workflow")
    logs = "".join(p.read_text() for p in (wd / "results" / "logs").rglob("*.log"))
    assert marker in logs, "the copy's broken no_imputation did not run"
    table = runs.read_metrics(wd / "results" / "metrics.tsv")
    statuses = set(table.loc[table["method"] == "no_imputation", "status"])
    assert statuses == {"failed"}, statuses


# ----------------------------------------------------------------------------- report captions
REPORT_DIR = REPO / "workflow" / "report"
LINK = "see `here <javascript:alert(document.cookie)>`_ and javascript:alert(2)"
RAW = "x\n\n.. raw:: html\n\n   <script>alert(1)</script>\n"


def _include_attack(tmp_path) -> tuple[str, str]:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT-91\n")
    return f"data.csv\n\n.. include:: {secret}\n\nmore", "TOP-SECRET-CONTENT-91"


def _html(rst: str) -> str:
    from docutils.core import publish_parts

    # docutils' defaults, as Snakemake's report uses them (include and raw enabled)
    return publish_parts(rst, writer="html",
                         settings_overrides={"report_level": 5, "halt_level": 5})["body"]


def _assert_inert(html: str, secret: str):
    low = html.lower()
    assert 'href="javascript:' not in low, html
    assert "<script" not in low, html
    assert secret not in html, html


def test_rst_escape_and_literal_block(tmp_path):
    from scziva_bench.report import textsafe

    attack, secret = _include_attack(tmp_path)
    for value in (LINK, attack, RAW, "`x`_ |sub| [#]_ **b** :role:`x` __ http://x.org"):
        for rst in (f"- Dataset d: local file {textsafe.rst_escape(value)}.\n",
                    f"Paragraph {textsafe.rst_escape(value)} end.\n",
                    textsafe.rst_escape(value) + "\n",
                    "Summary" + textsafe.rst_literal_block(value) + "\nafter\n"):
            html = _html(rst)
            _assert_inert(html, secret)
            assert "<a " not in html, html
    # shown as given: escaping only changes how, not what
    html = _html(textsafe.rst_escape("a_b *c* `d`") + "\n")
    assert "a_b *c* `d`" in html.replace("&lt;", "<")
    assert textsafe.one_line("a\nb\r\u2028c\x1b") == "a\\nb\\r\\u2028c\\x1b"
    assert "\n" not in textsafe.rst_escape(attack)


def _fake_snakemake(**params):
    import types

    from scziva_bench.catalog.figures import CAPTIONS

    params.setdefault("captions", CAPTIONS)
    return types.SimpleNamespace(params=types.SimpleNamespace(**params), config={}, wildcards={})


@pytest.mark.parametrize("template", sorted(p.name for p in REPORT_DIR.glob("*.rst")))
def test_report_captions_show_user_text_inert(tmp_path, template):
    """Each caption as Snakemake renders it (Jinja with trim_blocks/lstrip_blocks, then
    docutils with its defaults), with hostile text in every parameter."""
    jinja2 = pytest.importorskip("jinja2")
    attack, secret = _include_attack(tmp_path)
    describe = "\n".join([f"Dataset d: local file {LINK}.", f"Dataset e: local file {attack}.", RAW,
                          ".. include:: " + str(tmp_path / "secret.txt")])
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    text = (REPORT_DIR / template).read_text()
    rst = env.from_string(text).render(snakemake=_fake_snakemake(describe=describe, dataset=attack,
                                                                 scenario=LINK))
    html = _html(rst)
    _assert_inert(html, secret)
    if "describe" in text:  # the summary is still shown, verbatim
        assert "Dataset d: local file see `here" in html.replace("&lt;", "<")


def test_describe_config_with_hostile_paths_renders_inert(tmp_path):
    """The real summary of a config whose dataset path and description attack, through
    every caption template: one line per dataset, no link, no include."""
    jinja2 = pytest.importorskip("jinja2")
    from scziva_bench.pipeline.targets import describe_config
    attack, secret = _include_attack(tmp_path)
    cfg = {"datasets": {"d": {"source": "local", "path": attack, "description": LINK}},
           "scenarios": {"dropout": {"rates": [0.5], "seeds": [1]}},
           "methods": {"no_imputation": {}}, "metrics": ["pearson_dropped"], "seed": 0}
    describe = describe_config(cfg)
    assert sum(ln.startswith("Dataset d") for ln in describe.splitlines()) == 1
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    for template in sorted(REPORT_DIR.glob("*.rst")):
        rst = env.from_string(template.read_text()).render(
            snakemake=_fake_snakemake(describe=describe, dataset="d", scenario="dropout50_s1"))
        _assert_inert(_html(rst), secret)
