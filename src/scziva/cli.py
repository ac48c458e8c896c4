"""Command line: ``scziva impute IN OUT``.

Errors in what the user gave (file, values, options) print one line starting with
``scziva: error:`` and exit with status 2; the input file is never written to, and the
output appears only when complete (written to a temporary file, then renamed).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from .errors import InputError
from .fileio import atomic_write, h5ad_size_estimate, os_error_message
from .validate import check_counts, check_names, orientation_conflict

DESCRIPTION = """\
Impute dropouts in a single-cell RNA-seq count matrix with scZiva, a zero-inflated
negative binomial variational autoencoder.

IN is raw counts (not normalised, not log-transformed; integers from 0 to 16,777,216 =
2^24, the largest float32 keeps exactly; cell and gene names non-empty and unique) as
  * .h5ad  - counts in X, or in the layer named by --layer;
  * .csv / .tsv (optionally .gz) - a table with cell names in the first column and
    gene names in the header (cells x genes). Use --genes-by-cells when rows are genes.
OUT is written in the format its extension names:
  * .h5ad  - X holds the imputed counts, layers["counts"] the input counts,
    layers["scziva"] the imputed counts again, obs/var as in the input;
  * .csv / .tsv (optionally .gz) - the imputed counts, same orientation as IN.

Only observed zeros are changed: a zero becomes the model's expected count (1 - pi) * mu
where its estimated dropout probability pi exceeds --tau. Non-zero counts are kept.
"""

EPILOG = """\
examples:
  scziva impute pbmc.h5ad pbmc_imputed.h5ad
  scziva impute counts.csv imputed.csv --epochs 300 --seed 7
  scziva impute genes_x_cells.tsv.gz imputed.tsv.gz --genes-by-cells --device cuda
"""

_TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".h5ad"):
        return "h5ad"
    if name.endswith(_TABLE_SUFFIXES):
        return "table"
    raise InputError(f"{path}: unknown file type; use .h5ad, .csv, .tsv or .txt (optionally .gz)")


def _sep(path: Path) -> str:
    return "," if ".csv" in path.name.lower() else "\t"


def _read_table(path: Path, genes_by_cells: bool):
    import numpy as np
    import pandas as pd

    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")
    try:
        df = pd.read_csv(path, sep=_sep(path), index_col=0)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise InputError(f"{path}: cannot be read as a table ({str(exc).splitlines()[0]})") from None
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise InputError(f"{path}: no data (found {df.shape[0]} rows x {df.shape[1]} columns)")
    header = _raw_header(path)
    dup = list(dict.fromkeys(n for i, n in enumerate(header) if n in header[:i]))
    if dup:
        raise InputError(f"{path}: duplicate names in the header, e.g. {', '.join(dup[:3])}")
    if len(header) == df.shape[1]:  # pandas renames "" to "Unnamed: 3" and g, g to g, g.1
        df.columns = header
    if genes_by_cells:
        df = df.T
    for names, what in ((df.index, "cell"), (df.columns, "gene")):
        try:
            check_names(names, what, str(path))
        except InputError as exc:
            hint = "" if genes_by_cells or what == "gene" or "duplicate" not in str(exc) else \
                " (if rows are genes, pass --genes-by-cells)"
            raise InputError(f"{exc}{hint}") from None
    example = orientation_conflict(df.index, df.columns)
    if example is not None:
        flag = "without --genes-by-cells" if genes_by_cells else "with --genes-by-cells"
        raise InputError(f"{path}: the cell names look like genes or the gene names like cell barcodes "
                         f"(e.g. {example}); if the table is the other way round, run again {flag}")
    numeric = df.apply(pd.to_numeric, errors="coerce")
    bad = numeric.isna() & df.notna()
    if bad.to_numpy().any():
        r, c = np.argwhere(bad.to_numpy())[0]
        raise InputError(f"{path}: non-numeric value {df.iat[r, c]!r} at row {df.index[r]!r}, "
                         f"column {df.columns[c]!r}")
    if numeric.isna().to_numpy().any():
        r, c = np.argwhere(numeric.isna().to_numpy())[0]
        raise InputError(f"{path}: missing value at row {numeric.index[r]!r}, column {numeric.columns[c]!r}")
    return numeric


def _raw_header(path: Path) -> list:
    """The column names as written (pandas renames duplicates to g.1 and empty names to
    'Unnamed: N', which would hide both)."""
    import csv
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", newline="", encoding="utf-8-sig") as fh:
        return next(csv.reader(fh, delimiter=_sep(path)), [])[1:]


def _write_table(df, out: Path, genes_by_cells: bool):
    compression = "gzip" if out.name.lower().endswith(".gz") else None
    with atomic_write(out) as tmp:
        (df.T if genes_by_cells else df).to_csv(tmp, sep=_sep(out), compression=compression)


def _write_h5ad(adata, out: Path):
    # h5py can crash the process outright when the disk fills mid-write: check first
    with atomic_write(out, need_bytes=h5ad_size_estimate(adata)) as tmp:
        adata.write_h5ad(tmp)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scziva", description="scZiva: single-cell RNA-seq dropout imputation.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    imp = sub.add_parser("impute", help="impute dropouts in a count matrix", description=DESCRIPTION,
                         epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    imp.add_argument("input", metavar="IN", type=Path, help="counts: .h5ad, .csv, .tsv (optionally .gz)")
    imp.add_argument("output", metavar="OUT", type=Path, help="where to write the imputed counts (.h5ad/.csv/.tsv)")
    g = imp.add_argument_group("input")
    g.add_argument("--genes-by-cells", action="store_true",
                   help="the table's rows are genes and its columns cells (default: rows are cells)")
    g.add_argument("--layer", default=None, help="h5ad layer holding the raw counts (default: X)")
    g = imp.add_argument_group("model and training")
    g.add_argument("--epochs", type=int, default=200, help="maximum training epochs (default: 200; "
                   "training stops earlier when held-out cells stop improving)")
    g.add_argument("--seed", type=int, default=1, help="random seed; same seed, same result on CPU (default: 1)")
    g.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA when available)")
    g.add_argument("--tau", type=float, default=0.001,
                   help="impute a zero only where its dropout probability exceeds this (default: 0.001)")
    g.add_argument("--lr", type=float, default=1e-3, help="learning rate (default: 0.001)")
    g.add_argument("--hidden-dim", type=int, default=128, help="hidden layer width (default: 128)")
    g.add_argument("--latent-dim", type=int, default=64, help="latent dimensions (default: 64)")
    g.add_argument("--batch-size", type=int, default=128, help="cells per mini-batch (default: 128)")
    g.add_argument("--mode", choices=("scziva", "authors"), default="scziva",
                   help="'authors' reproduces the published code's full-batch schedule (default: scziva)")
    g = imp.add_argument_group("output")
    g.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _check_args(a):
    if a.epochs < 1:
        raise InputError(f"--epochs must be >= 1, got {a.epochs}")
    if not 0 <= a.tau < 1:
        raise InputError(f"--tau must be in [0, 1), got {a.tau}")
    for name in ("lr", "hidden_dim", "latent_dim", "batch_size"):
        if getattr(a, name) <= 0:
            raise InputError(f"--{name.replace('_', '-')} must be positive, got {getattr(a, name)}")
    if not a.input.exists():
        raise InputError(f"{a.input}: no such file")
    if a.input.is_dir():
        raise InputError(f"{a.input}: is a folder, not a file")
    if a.output.resolve() == a.input.resolve():
        raise InputError(f"{a.output}: OUT is the input file; choose another name (the input is never overwritten)")
    if a.output.is_dir():
        raise InputError(f"{a.output}: is a folder; OUT must be a file name (.h5ad, .csv or .tsv)")
    if a.output.exists() and not a.overwrite:
        raise InputError(f"{a.output}: already exists; pass --overwrite to replace it")
    if not a.output.parent.is_dir():
        raise InputError(f"{a.output.parent}: output folder does not exist")
    _kind(a.output)


def _read_input(a):
    """IN as an AnnData with validated counts in ``layers["counts"]`` (names checked)."""
    import anndata as ad
    import pandas as pd

    if _kind(a.input) == "h5ad":
        try:
            with warnings.catch_warnings():  # names are checked below, with the file's name
                warnings.filterwarnings("ignore", message=r".*names are not unique")
                adata = ad.read_h5ad(a.input)
        except Exception as exc:  # h5py/anndata raise many types for a broken file
            msg = " ".join(str(exc).split())
            raise InputError(f"{a.input}: cannot be read as .h5ad ({type(exc).__name__}: {msg})") from None
        if a.layer is not None and a.layer not in adata.layers:
            raise InputError(f"{a.input}: no layer {a.layer!r} (layers: {sorted(adata.layers.keys()) or 'none'})")
        X = adata.layers[a.layer] if a.layer else adata.X
        if X is None:
            raise InputError(f"{a.input}: X is empty; name the counts layer with --layer")
        check_names(adata.obs_names, "cell", str(a.input))
        check_names(adata.var_names, "gene", str(a.input))
    else:
        df = _read_table(a.input, a.genes_by_cells)
        X = df.to_numpy()
        adata = ad.AnnData(obs=pd.DataFrame(index=df.index.astype(str)),
                           var=pd.DataFrame(index=df.columns.astype(str)))
    X, _ = check_counts(X, str(a.input))  # names the file in any error; rounds with a warning
    if (X.nnz if hasattr(X, "nnz") else int((X != 0).sum())) == 0:
        raise InputError(f"{a.input}: every value is zero; there are no counts to learn from")
    adata.layers["counts"] = X
    return adata


def run_impute(a) -> int:
    import numpy as np

    from .anndata_api import impute
    from .core import resolve_device

    _check_args(a)
    resolve_device(a.device)
    adata = _read_input(a)
    impute(adata, layer="counts", key_added="scziva", seed=a.seed, device=a.device,
           num_epochs=a.epochs, lr=a.lr, hidden_dim=a.hidden_dim, latent_dim=a.latent_dim,
           tau=a.tau, batch_size=a.batch_size, mode=a.mode, verbose=False, progress=not a.quiet)
    X_imp = np.asarray(adata.layers["scziva"], dtype=np.float32)
    if _kind(a.output) == "h5ad":
        adata.X = X_imp
        _write_h5ad(adata, a.output)
    else:
        import pandas as pd

        _write_table(pd.DataFrame(X_imp, index=adata.obs_names, columns=adata.var_names),
                     a.output, a.genes_by_cells)
    if not a.quiet:
        info = adata.uns.get("scziva", {})
        extra = (f", {info['epochs_trained']} epochs, {info['train_seconds']:.1f} s on {info['device']}"
                 if "epochs_trained" in info else "")
        print(f"scziva: wrote {a.output} ({X_imp.shape[0]} cells x {X_imp.shape[1]} genes{extra})", file=sys.stderr)
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """warnings.showwarning for the command line: one line ``scziva: warning: ...`` for a
    UserWarning (rounded values and the like), nothing for library-internal categories."""
    if issubclass(category, UserWarning):
        print(f"scziva: warning: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # each distinct warning once
            warnings.showwarning = _show_warning
            return run_impute(args)
    except (InputError, ValueError) as exc:
        print(f"scziva: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, no permission, ... (outside the atomic writers)
        where = exc.filename or args.output
        print(f"scziva: error: {os_error_message(where, exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("scziva: interrupted; no output written", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
