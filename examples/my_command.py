"""A command-line imputer standing in for an R script (examples/config.yaml).

    python3 examples/my_command.py INPUT.csv OUTPUT.csv --threads N

The benchmark's CSV contract (docs/own_method.md): INPUT has a header
``cell,<gene>,...`` and one row per cell, ``<cell name>,<count>,...``; OUTPUT has the same
layout, cells and genes in the same order, with imputed counts. Standard library only,
as a program in another language would be: each zero becomes the gene's mean count
scaled to the cell's library size (a rank-1 expectation); observed counts are kept.
"""
import argparse
import csv


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--threads", type=int, default=1)  # unused: one thread is plenty
    args = ap.parse_args()

    with open(args.input, newline="") as fh:
        rows = list(csv.reader(fh))
    header, cells = rows[0], [r[0] for r in rows[1:]]
    X = [[float(v) for v in r[1:]] for r in rows[1:]]
    n_genes = len(header) - 1
    lib = [sum(r) for r in X]
    total = sum(lib) or 1.0
    gene_share = [sum(r[j] for r in X) / total for j in range(n_genes)]

    with open(args.output, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for cell, r, L in zip(cells, X, lib):
            w.writerow([cell] + [f"{v if v > 0 else L * gene_share[j]:.6g}"
                                 for j, v in enumerate(r)])


if __name__ == "__main__":
    main()
