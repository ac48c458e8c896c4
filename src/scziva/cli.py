"""Command line: ``scziva impute IN OUT``.

Errors in what the user gave (file, values, options) print one line starting with
``scziva: error:`` and exit with status 2; every option and the output path are checked
before the input is read or a model trained; the input file is never written to, and the
output appears only when complete (written to a temporary file, then renamed), with the
permissions of any new file (the user's umask).

Option defaults come from :class:`scziva.settings.ZivaSettings` (the one place they are
written); README's command-line section shows this parser's ``--help`` verbatim (a test
compares them).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from . import __version__
from .errors import InputError
from .fileio import atomic_write, check_free_space, check_writable, h5ad_size_estimate, os_error_message
from .settings import IMPUTE_VALUES, MAX_SEED, ZivaSettings, option_problem
from .validate import check_counts

DEFAULTS = ZivaSettings()  # torch-free: settings import no torch

DESCRIPTION = """\
Impute dropouts in a single-cell RNA-seq count matrix with scZiva, a zero-inflated
negative binomial variational autoencoder.

IN is raw counts (not normalised, not log-transformed; integers from 0 to 16,777,216 =
2^24, the largest float32 keeps exactly; cell and gene names non-empty and unique) as
  * .h5ad - counts in X, or in the layer named by --layer;
  * .csv / .tsv / .txt (optionally .gz) - a table with cell names in the first column
    and gene names in the header (cells x genes). Use --genes-by-cells when rows are
    genes. Names are kept exactly as written;
  * a 10x Genomics folder (matrix.mtx[.gz], barcodes.tsv[.gz], features.tsv[.gz] or
    genes.tsv[.gz]), or its matrix.mtx[.gz] file.
Values that look log-transformed or normalised (mostly non-integers, or an .h5ad whose
uns['log1p'] is set) are refused: pass the raw counts (--layer counts).
OUT is written in the format its extension names:
  * .h5ad - X holds the output, layers["counts"] the input counts, layers["scziva"]
    the output again, obs/var as in the input;
  * .csv / .tsv / .txt (optionally .gz) - the output, same orientation as IN (cells x
    genes for a 10x folder).

What the output holds (--impute-value):
  auto (default), log_mean: observed non-zero counts are kept; an observed zero
    whose dropout probability pi exceeds --tau becomes expm1(E[log1p X]), X ~ NB(mu,
    theta), the model's count had there been no dropout, taken on the log1p scale;
  denoise: every entry becomes the model's expected count given the observation (the
    ZINB posterior mean), observed counts included; the denoising output;
  pi_mu: the authors' (1 - pi) * mu for the imputed zeros; also mu, posterior,
    log_posterior, zinb_mean (see the Python docstring of ZIVAimpute).
"""

EPILOG = """\
examples:
  scziva impute pbmc.h5ad pbmc_imputed.h5ad --layer counts
  scziva impute counts.csv imputed.csv --epochs 300 --seed 7
  scziva impute filtered_feature_bc_matrix/ denoised.h5ad --impute-value denoise
  scziva impute genes_x_cells.tsv.gz imputed.tsv.gz --genes-by-cells --device cuda
  scziva impute atlas_1M_cells.h5ad atlas_imputed.h5ad --stream --layer counts
"""

_TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")

# command-line flag -> ZivaSettings field (for the range checks and their messages)
_NUMERIC_FLAGS = {"--epochs": "num_epochs", "--seed": "seed", "--tau": "tau", "--lr": "lr",
                  "--hidden-dim": "hidden_dim", "--latent-dim": "latent_dim", "--batch-size": "batch_size"}


def _output_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".h5ad"):
        return "h5ad"
    if name.endswith(_TABLE_SUFFIXES):
        return "table"
    raise InputError(f"{path}: unknown output file type; use .h5ad, .csv, .tsv or .txt (optionally .gz)")


def _sep(path: Path) -> str:
    return "," if ".csv" in path.name.lower() else "\t"


def _write_table(df, out: Path, genes_by_cells: bool):
    compression = "gzip" if out.name.lower().endswith(".gz") else None
    with atomic_write(out) as tmp:
        (df.T if genes_by_cells else df).to_csv(tmp, sep=_sep(out), compression=compression)


def _write_h5ad(adata, out: Path):
    # h5py can crash the process outright when the disk fills mid-write: check first
    with atomic_write(out, need_bytes=h5ad_size_estimate(adata)) as tmp:
        adata.write_h5ad(tmp)


def _number(text: str):
    """An option's value as int when it is one, else float ('nan', '1e-3'); the range
    check then says what is wrong with the option's name."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    d = DEFAULTS
    p = argparse.ArgumentParser(prog="scziva", description="scZiva: single-cell RNA-seq dropout imputation.")
    p.add_argument("--version", action="version", version=f"scziva {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    imp = sub.add_parser("impute", help="impute dropouts in a count matrix", description=DESCRIPTION,
                         epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    imp.add_argument("input", metavar="IN", type=Path,
                     help="counts: .h5ad, .csv, .tsv, .txt (optionally .gz), a 10x folder or matrix.mtx")
    imp.add_argument("output", metavar="OUT", type=Path, help="where to write the output (.h5ad/.csv/.tsv/.txt)")
    g = imp.add_argument_group("input")
    g.add_argument("--genes-by-cells", action="store_true",
                   help="the table's rows are genes and its columns cells (default: rows are cells)")
    g.add_argument("--layer", default=None, help="h5ad layer holding the raw counts (default: X)")
    g.add_argument("--stream", action="store_true",
                   help="for data larger than memory (IN and OUT .h5ad, counts stored as CSR or dense): "
                        "train from the file one pool of cells at a time and write OUT in chunks; "
                        "OUT then holds the output in X, with obs and var")
    g = imp.add_argument_group("model and training")
    g.add_argument("--epochs", type=_number, default=d.num_epochs,
                   help=f"maximum training epochs (default: {d.num_epochs}; training stops earlier "
                        "when held-out cells stop improving)")
    g.add_argument("--seed", type=_number, default=d.seed,
                   help=f"random seed, 0 to {MAX_SEED}; same seed, same result on CPU (default: {d.seed})")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: CUDA when available)")
    g.add_argument("--tau", type=_number, default=d.tau,
                   help=f"impute a zero only where its dropout probability exceeds this (default: {d.tau:g})")
    g.add_argument("--lr", type=_number, default=d.lr, help=f"learning rate (default: {d.lr:g})")
    g.add_argument("--hidden-dim", type=_number, default=d.hidden_dim,
                   help=f"hidden layer width (default: {d.hidden_dim})")
    g.add_argument("--latent-dim", type=_number, default=d.latent_dim,
                   help=f"latent dimensions (default: {d.latent_dim})")
    g.add_argument("--batch-size", type=_number, default=d.batch_size,
                   help=f"cells per mini-batch (default: {d.batch_size})")
    g.add_argument("--mode", choices=("scziva", "authors"), default=d.mode,
                   help=f"'authors' reproduces the published code's full-batch schedule (default: {d.mode})")
    g = imp.add_argument_group("output")
    g.add_argument("--impute-value", choices=("auto",) + IMPUTE_VALUES, default="auto", metavar="RULE",
                   help="what the output holds: auto (log_mean; pi_mu with --mode authors), "
                        "denoise, pi_mu, mu, posterior, log_posterior, log_mean, zinb_mean (above)")
    g.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    g.add_argument("--quiet", action="store_true", help="no progress bar or summary line")
    return p


def _settings(a) -> ZivaSettings:
    """Every numeric option checked (message naming the flag), then the whole set."""
    for flag, field in _NUMERIC_FLAGS.items():
        problem = option_problem(field, getattr(a, flag[2:].replace("-", "_")))
        if problem:
            raise InputError(f"{flag} {problem}")
    return ZivaSettings(seed=a.seed, num_epochs=a.epochs, lr=a.lr, hidden_dim=a.hidden_dim,
                        latent_dim=a.latent_dim, tau=a.tau, batch_size=a.batch_size, mode=a.mode,
                        impute_value=a.impute_value)


def _check_paths(a) -> None:
    if not a.input.exists():
        raise InputError(f"{a.input}: no such file or folder")
    if a.output.resolve() == a.input.resolve():
        raise InputError(f"{a.output}: OUT is the input file; choose another name (the input is never overwritten)")
    if a.output.is_dir():
        raise InputError(f"{a.output}: is a folder; OUT must be a file name (.h5ad, .csv or .tsv)")
    _output_kind(a.output)
    is_h5ad = a.input.is_file() and a.input.name.lower().endswith(".h5ad")
    is_table = a.input.is_file() and a.input.name.lower().endswith(_TABLE_SUFFIXES)
    if a.layer is not None and not is_h5ad:
        raise InputError(f"{a.input}: --layer names a layer of an .h5ad file; this input is not one")
    if a.genes_by_cells and not is_table:
        raise InputError(f"{a.input}: --genes-by-cells is for text tables; .h5ad files and 10x folders "
                         "have a fixed orientation (cells x genes, and genes x cells on disk for 10x)")
    if a.output.exists() and not a.overwrite:
        raise InputError(f"{a.output}: already exists; pass --overwrite to replace it")
    check_writable(a.output)  # a real file is made and removed: read-only folders fail here


def _read_input(a):
    """IN as an AnnData with validated counts in ``layers["counts"]`` (names checked)."""
    import anndata as ad
    import pandas as pd

    from .readers import read_any

    flip = ("run again without --genes-by-cells" if a.genes_by_cells else "run again with --genes-by-cells")
    raw = read_any(a.input, orientation="genes_x_cells" if a.genes_by_cells else "cells_x_genes",
                   layer=a.layer, counts_layer_first=False, flip_hint=flip)
    if raw.adata is not None:
        others = sorted(k for k in raw.adata.layers.keys() if k != raw.layer)
        hint = ("pass the layer with the raw counts with --layer" +
                (f" (this file's layers: {', '.join(others)})" if others else " (this file has no other layer)"))
    else:
        hint = "give the raw counts (if the values really are counts, round them first)"
    X, _ = check_counts(raw.X, str(a.input), uns=raw.uns, hint=hint)  # rounds a few non-integers, with a warning
    if (X.nnz if hasattr(X, "nnz") else int((X != 0).sum())) == 0:
        raise InputError(f"{a.input}: every value is zero; there are no counts to learn from")
    if raw.adata is not None:
        adata = raw.adata
    else:
        var = raw.var if raw.var is not None else pd.DataFrame(index=raw.var_names)
        adata = ad.AnnData(obs=pd.DataFrame(index=raw.obs_names), var=var)
    adata.layers["counts"] = X
    return adata


def _check_space(a, adata) -> None:
    """Refuse before training when OUT's folder cannot hold the output (dense upper bound:
    the output twice, X and layers["scziva"], beside the input's layers)."""
    n_cells, n_genes = adata.shape
    out_bytes = 4 * n_cells * n_genes
    if _output_kind(a.output) == "h5ad":
        check_free_space(a.output, h5ad_size_estimate(adata) + 2 * out_bytes)
    else:  # text: up to ~12 characters per value before compression
        check_free_space(a.output, 0 if a.output.name.lower().endswith(".gz") else 12 * n_cells * n_genes)


def _fit_options(a, s: ZivaSettings) -> dict:
    """The fit's keyword arguments from the checked options (both the in-memory and the
    streamed path)."""
    return dict(seed=s.seed, device=a.device, num_epochs=s.num_epochs, lr=s.lr, hidden_dim=s.hidden_dim,
                latent_dim=s.latent_dim, tau=s.tau, batch_size=s.batch_size, mode=s.mode,
                impute_value=a.impute_value, progress=not a.quiet)


def _run_stream(a, s) -> int:
    from .stream import impute_h5ad

    for path, what in ((a.input, "IN"), (a.output, "OUT")):
        if not path.name.lower().endswith(".h5ad"):
            raise InputError(f"{path}: --stream reads and writes .h5ad files only ({what} is not one)")
    model = impute_h5ad(a.input, a.output, layer=a.layer, overwrite=a.overwrite, **_fit_options(a, s))
    if not a.quiet:
        print(f"scziva: wrote {a.output} ({model.stopped_epoch} epochs, {model.train_seconds:.1f} s training, "
              f"streamed from disk)", file=sys.stderr)
    return 0


def run_impute(a) -> int:
    import numpy as np
    import scipy.sparse as sp

    from .anndata_api import impute
    from .core import resolve_device

    s = _settings(a)
    _check_paths(a)
    try:  # an unknown or absent device fails here, not after reading and training
        resolve_device(a.device)
    except ValueError as exc:
        raise InputError(f"--device: {exc}") from None
    if a.stream:
        return _run_stream(a, s)
    adata = _read_input(a)
    _check_space(a, adata)
    impute(adata, layer="counts", key_added="scziva", verbose=False, **_fit_options(a, s))
    out = adata.layers["scziva"]
    if _output_kind(a.output) == "h5ad":
        adata.X = out
        adata.uns.pop("log1p", None)  # describes an X that is no longer there
        _write_h5ad(adata, a.output)
    else:
        import pandas as pd

        dense = out.toarray() if sp.issparse(out) else np.asarray(out, dtype=np.float32)
        _write_table(pd.DataFrame(dense, index=adata.obs_names, columns=adata.var_names),
                     a.output, a.genes_by_cells)
    if not a.quiet:
        info = adata.uns.get("scziva", {})
        extra = (f", {info['epochs_trained']} epochs, {info['train_seconds']:.1f} s on {info['device']}"
                 if "epochs_trained" in info else "")
        print(f"scziva: wrote {a.output} ({out.shape[0]} cells x {out.shape[1]} genes{extra})", file=sys.stderr)
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
