"""Import path of the workflow's scripts: this checkout's ``src/`` comes first.

Every script in this folder starts with::

    sys.path.insert(0, str(Path(snakemake.scriptdir).resolve()))
    import _bootstrap

Why it is done this way: Snakemake runs a copy of each script from
``.snakemake/scripts/``, and ``snakemake.scriptdir`` is the original's folder as the
rule spelled it, ``<checkout>/workflow/rules/../scripts``. ``Path.parents`` is lexical,
so ``parents[1]`` of that is ``<checkout>/workflow/rules`` and ``<checkout>/src`` is
never found; the imports then silently come from whatever ``scziva`` the job's Python
has installed (another checkout). Resolving ``scriptdir`` first finds this module, and
this module finds the checkout from its own real location (``__file__`` of an imported
module is the file itself), independently of how the rule or Snakemake spelled paths.

On import it puts ``<checkout>/src`` first on ``sys.path`` and on ``PYTHONPATH`` (for
subprocesses such as external methods), then imports ``scziva`` and ``scziva_bench`` and
checks that they come from there; if a copy from elsewhere was already imported, it
stops with one line naming both.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
SRC = CHECKOUT / "src"
PACKAGES = ("scziva", "scziva_bench")


def use_checkout_src() -> Path:
    """Put :data:`SRC` first on ``sys.path`` and ``PYTHONPATH``; return it."""
    if not (SRC / "scziva_bench").is_dir():
        raise SystemExit(f"workflow script: {SRC} has no scziva_bench package; the workflow "
                         f"folder must stay inside its checkout ({CHECKOUT})")
    src = str(SRC)
    sys.path[:] = [src] + [p for p in sys.path if p != src]
    old = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != src]
    os.environ["PYTHONPATH"] = os.pathsep.join([src] + old)
    for name in PACKAGES:
        mod = __import__(name)
        where = Path(getattr(mod, "__file__", "") or "").resolve()
        if SRC not in where.parents:
            raise SystemExit(f"workflow script: {name} was imported from {where}, not from this "
                             f"checkout's {SRC}; run the workflow with a Python where that copy "
                             "is not imported first")
    return SRC


use_checkout_src()
