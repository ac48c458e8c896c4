"""The simulation regimes of scziva_bench.data.simulate as splat() keyword arguments for the
benchmark scripts (bench_baselines.py, bench_scvi.py): derived from simulate.REGIMES, not
copied, so that they cannot drift from the presets config.yaml is made from."""
from scziva_bench.data import simulate


def config_regimes(n_genes: int = 600, n_groups: int = 4) -> dict:
    """``{"cfg_umi": {...}, "cfg_fulllength": {...}}``: splat() arguments of each regime at
    ``n_genes`` genes (library size scaled, :func:`simulate.regime`), without the data size,
    which the scripts pass themselves. The tables in docs/methods.md were measured with
    the regimes at 600 genes and 4 groups."""
    out = {}
    for name in simulate.REGIMES:
        p = simulate.regime(name, n_genes=n_genes, n_groups=n_groups)
        out[f"cfg_{name}"] = {k: v for k, v in p.items() if k not in ("n_cells", "n_genes")}
    return out
