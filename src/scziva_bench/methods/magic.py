"""MAGIC (van Dijk et al. 2018, Cell) through the ``magic-impute`` package.

Pre- and post-processing as in Open Problems' denoising task and as MAGIC's authors
recommend: each cell is scaled to a total of 1 (library-size normalisation), then
square-root transformed; MAGIC diffuses the values over its cell graph; the output is
squared and multiplied back by each cell's observed library size, which puts it on the
count scale of the input.
"""

from __future__ import annotations

import numpy as np

from scziva_bench.methods._common import dense, library_sizes, pkg_version

DEFAULTS = {"knn": 5, "decay": 1, "t": 3, "n_pca": 100, "solver": "exact", "transform": "sqrt"}
EXTRA_VALUES = {"t": ("auto",)}  # MAGIC picks t itself (values beside the default's type)
SOURCE = pkg_version("magic-impute")


def impute(counts, *, seed, device, adata, knn, decay, t, n_pca, solver, transform):
    import warnings

    import magic

    X = dense(counts)
    lib = library_sizes(X)
    Xn = X / lib[:, None]
    if transform == "sqrt":
        fwd, back = np.sqrt, np.square
    elif transform == "log":
        # log1p on the CPM scale (MAGIC's alternative); undone with expm1
        Xn = Xn * 1e6
        lib = lib / 1e6
        fwd, back = np.log1p, np.expm1
    else:
        from scziva.errors import InputError
        raise InputError(f"method 'magic': transform must be 'sqrt' or 'log', got {transform!r}")
    n_pca = None if n_pca is None else int(min(n_pca, min(X.shape) - 1))
    op = magic.MAGIC(knn=int(knn), decay=decay, t=t, n_pca=n_pca, solver=solver,
                     n_jobs=1, random_state=int(seed), verbose=0)
    with warnings.catch_warnings():  # unexpressed genes, graphtools' deprecated logger calls
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        Y = np.asarray(op.fit_transform(fwd(Xn), genes="all_genes"), dtype=np.float64)
    Y = np.clip(back(np.clip(Y, 0.0, None)), 0.0, None)
    return (Y * lib[:, None]).astype(np.float32)
