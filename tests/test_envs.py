"""envs/*.yaml: valid conda environment files that agree with pyproject.toml."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

from scziva_bench import workflow_utils as wu

REPO = Path(__file__).resolve().parents[1]
ENVS = sorted((REPO / "envs").glob("*.yaml"))

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _parse(req: str):
    m = _REQ.match(req)
    assert m, f"cannot parse requirement {req!r}"
    return _norm(m.group(1)), m.group(3).replace(" ", "")


def pyproject_requirements() -> dict:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    proj = data["project"]
    reqs = list(proj["dependencies"])
    for extra in proj.get("optional-dependencies", {}).values():
        reqs += extra
    out = {}
    for r in reqs:
        name, spec = _parse(r.split(";")[0])
        out[name] = spec
    return out


def pip_requirements(env: dict) -> list[str]:
    pips = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    return [r for block in pips for r in block if not str(r).startswith("-")]


def test_there_is_one_env_per_family():
    assert {p.stem for p in ENVS} == {"bench", "torch", "scvi", "magic"}
    used = set(wu.METHOD_ENVS.values()) | {wu.DEFAULT_ENV}
    assert used <= {p.stem for p in ENVS}


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_env_file_is_a_conda_env(path):
    env = yaml.safe_load(path.read_text())
    assert isinstance(env, dict) and set(env) <= {"name", "channels", "dependencies"}
    assert env["channels"] and all(isinstance(c, str) for c in env["channels"])
    deps = env["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    assert any(re.fullmatch(r"python(=|>=)3\.1[0-9].*", d) for d in conda), conda
    assert "pip" in conda  # the pip section needs pip itself
    assert pip_requirements(env), "no pip requirements"


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_env_packages_agree_with_pyproject(path):
    allowed = pyproject_requirements()
    env = yaml.safe_load(path.read_text())
    names = []
    for req in pip_requirements(env):
        name, spec = _parse(req)
        names.append(name)
        assert name in allowed, f"{path.name}: {name} is not a dependency in pyproject.toml"
        if name == "torch":
            assert spec == "==2.13.0", f"{path.name}: torch must be pinned to 2.13.0, got {spec!r}"
        else:
            assert spec == allowed[name], (
                f"{path.name}: {name}{spec} differs from pyproject.toml's {name}{allowed[name]}")
    assert len(names) == len(set(names)), f"{path.name}: duplicate packages"
    # every env can import the scziva package (its scripts import scziva.errors)
    for pkg in ("torch", "numpy", "scipy", "pandas", "anndata"):
        assert pkg in names, f"{path.name} lacks {pkg}"


def test_family_packages():
    pkgs = {p.stem: {_parse(r)[0] for r in pip_requirements(yaml.safe_load(p.read_text()))}
            for p in ENVS}
    assert "scvi-tools" in pkgs["scvi"]
    assert "magic-impute" in pkgs["magic"]
    assert {"scanpy", "matplotlib", "scikit-learn", "pyyaml", "igraph", "leidenalg"} <= pkgs["bench"]
