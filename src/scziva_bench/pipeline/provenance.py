"""What made a run: package versions, git commit, machine, GPU presence (no heavy imports)."""

from __future__ import annotations

import os
from pathlib import Path

PROVENANCE_PACKAGES = ("scziva", "numpy", "scipy", "pandas", "anndata", "scanpy", "torch",
                       "scvi-tools", "magic-impute", "scikit-learn", "matplotlib", "snakemake")


def package_versions(names=PROVENANCE_PACKAGES) -> dict:
    """Installed version of each distribution (None when not installed); nothing is
    imported."""
    from importlib import metadata

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def provenance(config: dict, repo=".") -> dict:
    """What made a run: time (UTC), Python, platform, package versions, git commit, config."""
    import datetime
    import json
    import platform
    import sys

    return {
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "git_commit": git_commit(repo),
        "packages": package_versions(),
        # a JSON round trip turns Snakemake's config objects into plain dicts and lists
        "config": json.loads(json.dumps(config, default=str)),
    }


def nvidia_gpu_present() -> bool:
    """Whether this machine shows an NVIDIA GPU (a /dev/nvidiaN device or nvidia-smi),
    without importing torch. ``CUDA_VISIBLE_DEVICES`` set to "" or "-1" hides them."""
    import shutil

    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return any(Path("/dev").glob("nvidia[0-9]*")) or shutil.which("nvidia-smi") is not None


def git_commit(path=".") -> str | None:
    """The git commit of the checkout at ``path``, or None (no git, not a checkout)."""
    import subprocess
    try:
        res = subprocess.run(["git", "-C", os.fspath(path), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None
