"""Version locks: envs/*.yaml, envs/constraints.txt, the Makefile and the venv agree.

`make` installs every package at the version of envs/constraints.txt; the conda
environments (`--use-conda`) pin the same versions; both satisfy pyproject.toml.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from scziva_bench.pipeline import targets

REPO = Path(__file__).resolve().parents[1]
ENVS = sorted((REPO / "envs").glob("*.yaml"))
LOCK = REPO / "envs" / "constraints.txt"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        assert m, f"constraints.txt: not an exact pin: {line!r}"
        assert _norm(m.group(1)) not in pins, f"constraints.txt: {m.group(1)} twice"
        pins[_norm(m.group(1))] = m.group(2)
    return pins


def pyproject_requirements() -> list[Requirement]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    proj = data["project"]
    reqs = list(proj["dependencies"])
    for extra in proj.get("optional-dependencies", {}).values():
        reqs += extra
    return [Requirement(r) for r in reqs]


def pip_lines(env: dict) -> list[str]:
    pips = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    return [str(r) for block in pips for r in block]


def pip_requirements(env: dict) -> list[str]:
    return [r for r in pip_lines(env) if not r.startswith("-")]


def test_there_is_one_env_per_family():
    assert {p.stem for p in ENVS} == {"bench", "torch", "scvi", "magic"}
    from scziva_bench.catalog import methods as catalog

    used = {row.env for row in catalog.ROWS.values()} | {targets.DEFAULT_ENV}
    assert used <= {p.stem for p in ENVS} == set(catalog.ENVS)


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_env_file_is_a_conda_env(path):
    env = yaml.safe_load(path.read_text())
    assert isinstance(env, dict) and set(env) <= {"name", "channels", "dependencies"}
    assert env["channels"] and all(isinstance(c, str) for c in env["channels"])
    deps = env["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f"python={py}" in conda, f"{path.name}: python is not {py} (the venv's): {conda}"
    assert "pip" in conda  # the pip section needs pip itself
    assert pip_requirements(env), "no pip requirements"
    for opt in (r for r in pip_lines(env) if r.startswith("-")):
        # an extra index only: a replaced index (--index-url) fails offline
        assert opt.startswith("--extra-index-url "), f"{path.name}: {opt!r}"


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_env_pins_are_exact_and_those_of_the_lock(path):
    pins = lock_pins()
    env = yaml.safe_load(path.read_text())
    names = []
    for line in pip_requirements(env):
        req = Requirement(line)
        spec = list(req.specifier)
        assert len(spec) == 1 and spec[0].operator == "==", f"{path.name}: {line!r} is not an exact pin"
        name = _norm(req.name)
        names.append(name)
        assert name in pins, f"{path.name}: {name} is not in envs/constraints.txt"
        assert spec[0].version == pins[name], (
            f"{path.name}: {name}=={spec[0].version} but envs/constraints.txt has {pins[name]}")
    assert len(names) == len(set(names)), f"{path.name}: duplicate packages"
    # every env can import the scziva package (its scripts import scziva.errors)
    for pkg in ("torch", "numpy", "scipy", "pandas", "anndata", "tqdm"):
        assert pkg in names, f"{path.name} lacks {pkg}"


def test_family_packages():
    pkgs = {p.stem: {_norm(Requirement(r).name) for r in pip_requirements(yaml.safe_load(p.read_text()))}
            for p in ENVS}
    assert "scvi-tools" in pkgs["scvi"]
    assert "magic-impute" in pkgs["magic"]
    assert {"scanpy", "matplotlib", "scikit-learn", "pyyaml", "igraph", "leidenalg"} <= pkgs["bench"]
    assert "scvi-tools" not in pkgs["bench"] | pkgs["torch"] | pkgs["magic"]


def test_envs_without_a_gpu_get_the_cpu_build_of_torch():
    for path in ENVS:
        opts = [r for r in pip_lines(yaml.safe_load(path.read_text())) if r.startswith("-")]
        if path.stem in ("bench", "magic"):
            assert opts == [f"--extra-index-url {CPU_INDEX}"], path.name
        else:  # GPU rules: PyPI's (CUDA) build
            assert opts == [], path.name


def test_lock_satisfies_pyproject():
    pins = lock_pins()
    for req in pyproject_requirements():
        name = _norm(req.name)
        assert name in pins, f"pyproject.toml needs {req}, envs/constraints.txt has no {name}"
        assert req.specifier.contains(Version(pins[name]), prereleases=True), (
            f"envs/constraints.txt: {name}=={pins[name]} does not satisfy pyproject.toml's {req}")
    assert "scziva" not in pins  # the project itself is installed from the checkout


def _make_n(*args: str) -> list[str]:
    if shutil.which("make") is None:
        pytest.skip("no make")
    # a venv path that does not exist: make prints the whole install recipe, runs nothing
    out = subprocess.run(["make", "-n", "VENV=/nonexistent/venv", *args, "venv"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [line for line in out.stdout.splitlines() if " pip install " in line]


def test_makefile_installs_the_lock_with_the_cpu_torch_by_default():
    torch = lock_pins()["torch"]
    lines = _make_n()
    installs = [line for line in lines if "--upgrade pip" not in line]
    assert len(installs) == 2, lines
    assert all("-c envs/constraints.txt" in line for line in installs), installs
    torch_line, project_line = installs
    assert f'"torch=={torch}"' in torch_line and "--no-deps" in torch_line
    assert f"--extra-index-url {CPU_INDEX}" in torch_line
    assert '-e ".[bench,test]"' in project_line
    assert not any("--index-url" in line.replace("--extra-index-url", "") for line in lines)


def test_makefile_gpu_builds_on_request():
    torch_line = [line for line in _make_n("TORCH=cuda") if "torch==" in line][0]
    assert "index-url" not in torch_line  # PyPI's Linux wheel is the CUDA build
    url = "https://download.pytorch.org/whl/cu126"
    torch_line = [line for line in _make_n(f"TORCH_INDEX={url}") if "torch==" in line][0]
    assert f"--extra-index-url {url}" in torch_line
    out = subprocess.run(["make", "-n", "TORCH=gpu", "venv"], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0 and "TORCH must be cpu or cuda" in out.stderr


def _made_by_make() -> bool:
    return (Path(sys.prefix) / ".installed").exists()


@pytest.mark.skipif(not _made_by_make(), reason="not running in a venv made by `make`")
def test_the_venv_has_the_locked_versions():
    wrong = {}
    for name, version in lock_pins().items():
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong[name] = (None, version)
            continue
        if have.split("+")[0] != version:
            wrong[name] = (have, version)
    assert not wrong, f"installed vs envs/constraints.txt: {wrong} (rebuild the venv: rm -rf .venv; make)"


@pytest.mark.skipif(not _made_by_make(), reason="not running in a venv made by `make`")
def test_env_files_are_what_lock_py_generates_from_the_lock():
    """Each env pins its packages and all their dependencies (from the installed metadata)."""
    spec = importlib.util.spec_from_file_location("envs_lock", REPO / "envs" / "lock.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    pins = lock_pins()
    for path in ENVS:
        assert path.read_text() == mod.env_text(path.stem, pins), (
            f"{path.name} is out of date: run `make lock` (python envs/lock.py)")
