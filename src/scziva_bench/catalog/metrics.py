"""Facts about every metric, in one place (docs/metrics.md explains them).

Dependency-free (standard library only): the Snakefile, the figures and the report
import it without numpy, scanpy or torch. :mod:`scziva_bench.evaluation.metrics` computes the
metrics listed here and nothing else.

Per metric (:class:`MetricSpec`):

- ``maximize``: ``True`` (larger is better), ``False`` (smaller is better) or ``"zero"``
  (0 is best, either sign is worse: compare absolute values);
- ``family``: one of :data:`FAMILIES`;
- ``group``: the computation group of :func:`scziva_bench.evaluation.metrics.evaluate`
  (``which=...``), one of :data:`GROUPS`;
- ``needs``: what a scenario must have for the metric to apply (:data:`NEEDS`); where
  one is missing the metric is ``not_applicable`` (value NaN, never computed);
- ``ranked``: whether the metric enters the ranks;
- ``description``: one line;
- ``unranked_because``: for a metric that is not ranked, why (the reference-output panel
  of :mod:`scziva_bench.evaluation.validation` that it fails, or what it rewards); "" for ranked ones.

A metric is ranked only if it passes the validation panel (docs/metrics.md,
"Validation"; ``tests/test_validation.py`` enforces it for every ranked metric).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["MetricSpec", "SPECS", "FAMILIES", "FAMILY_LABELS", "FAMILY_SHORT", "spec", "GROUPS", "NEEDS", "STATUSES", "RESOURCE_METRICS",
           "names", "ranked", "better", "sort_key", "oriented", "higher_is_better"]

FAMILIES = ("accuracy_imputation", "accuracy_denoising", "mcv", "clustering", "de", "genecorr",
            "trajectory", "resources")
GROUPS = ("entries", "denoising", "mcv", "clustering", "de", "genecorr", "trajectory",
          "resources")
#: truth: a count-scale reference the methods did not see (not for MCV, not a copy of the
#: input); mask: the removed entries; labels: >= 2 cell labels; de_truth: simulated DE
#: factors; mcv: an MCV scenario (test molecules); true_mean: the simulation's
#: pre-Poisson cell-gene means; pseudotime: a true order of the cells (a path
#: simulation's obs["pseudotime"], or labels that are known developmental stages).
#: how reports name each family (long, and short for figure axes), in report order
FAMILY_LABELS = {
    "accuracy_imputation": "imputation (observed zeros)",
    "accuracy_denoising": "denoising (against the true means)",
    "mcv": "molecular cross-validation",
    "clustering": "clustering",
    "de": "differential expression",
    "genecorr": "gene-gene correlation",
    "trajectory": "trajectory (pseudotime order)",
    "resources": "resources",
}
FAMILY_SHORT = {
    "accuracy_imputation": "imputation\n(observed zeros)", "accuracy_denoising":
    "denoising\n(true means)", "mcv": "MCV", "clustering": "clustering", "de": "DE",
    "genecorr": "gene-gene\ncorrelation", "trajectory": "trajectory", "resources": "resources",
}
NEEDS = ("truth", "mask", "labels", "de_truth", "mcv", "true_mean", "pseudotime")
STATUSES = ("ok", "failed", "not_applicable")
RESOURCE_METRICS = ("runtime_s", "max_rss_mb")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    maximize: object  # True, False or "zero"
    family: str
    group: str
    needs: tuple
    ranked: bool
    description: str
    unranked_because: str = ""
    #: ``"package.module:function"`` of a metric computed by its own function
    #: (``function(inputs) -> float``, see :class:`scziva_bench.evaluation.metrics.Inputs`);
    #: "" for the metrics of :func:`scziva_bench.evaluation.metrics.evaluate`'s groups
    compute: str = ""

    @property
    def direction_label(self) -> str:
        """``higher is better``, ``lower is better`` or ``best at 0``."""
        m = self.maximize
        return "best at 0" if m == "zero" else ("higher is better" if m else "lower is better")

    @property
    def arrow(self) -> str:
        m = self.maximize
        return "\u2192 0" if m == "zero" else ("\u2191" if m else "\u2193")

    @property
    def higher_is_better(self) -> bool:
        """True where larger is better; False for smaller-is-better and best-at-zero."""
        return self.maximize is True


def _row(name, maximize, family, group, needs, ranked, description, unranked_because="",
         compute=""):
    assert maximize in (True, False, "zero"), name
    assert family in FAMILIES and group in GROUPS and set(needs) <= set(NEEDS), name
    assert bool(ranked) != bool(unranked_because) or group == "resources", name
    assert not compute or ":" in compute, name
    return MetricSpec(name, maximize, family, group, tuple(needs), bool(ranked), description,
                      unranked_because, compute)


# why the pooled entry errors on the dropped entries are not ranked (measured with the
# panel of scziva_bench.evaluation.validation, docs/metrics.md "Validation")
_WHY_DROPPED = {
    "pearson": "pooled over genes it is driven by the gene means: a rank-one depth x gene "
               "share output scores 0.84 on the UMI regime at 80 % dropout, above a kNN average",
    "rmse": "a rank-one depth x gene share output or a constant beats a kNN average (UMI, "
            "80 %; full-length, every rate)",
    "mae": "a constant beats a kNN average (UMI 80 %, full-length every rate)",
    "log_mse": "a constant beats a kNN average and comes close to the oracle (UMI 20 %: "
               "0.169 against the oracle's 0.222)",
    "median_l1": "a constant 1 scores 0 where half the dropped truths are 1; zeros set to 1 "
                 "beat the oracle",
}


_ENTRY = {
    "pearson": (True, "Pearson correlation of imputed and true counts"),
    "rmse": (False, "root mean squared error on counts"),
    "mae": (False, "mean absolute error on counts"),
    "log_mse": (False, "mean squared error of log1p(counts)"),
    "median_l1": (False, "median absolute error on counts (scVI paper)"),
}

_LIST = (
    [_row(f"{m}_dropped", mx, "accuracy_imputation", "entries", ("truth", "mask"), False,
           f"{d}, on the dropped / masked entries (not ranked)", _WHY_DROPPED[m])
     for m, (mx, d) in _ENTRY.items()]
    # on all entries the undropped ones equal the input: a method that changes nothing
    # wins them, so they are reported but not ranked
    + [_row(f"{m}_all", mx, "accuracy_imputation", "entries", ("truth",), False,
             f"{d}, on all entries (rewards keeping observed values: not ranked)",
             "the undropped entries equal the input: keeping the input beats the oracle")
       for m, (mx, d) in _ENTRY.items()]
    + [
        _row("zeros_gene_pearson", True, "accuracy_imputation", "entries", ("truth", "mask"),
             True, "mean over genes of the Pearson correlation across the cells observed as "
             "zero, log-normalised imputed vs truth (dropped and real zeros)"),
        _row("denoise_log_mse", False, "accuracy_denoising", "denoising", ("true_mean",), False,
             "MSE of log-normalised imputed vs the simulation's pre-Poisson means, all "
             "entries (not ranked)",
             "a rank-one depth x gene share output (no cell signal) beats no_imputation and "
             "a kNN average (UMI 50 %: 0.92 against 2.51 and 1.09)"),
        _row("denoise_pearson", True, "accuracy_denoising", "denoising", ("true_mean",), True,
             "mean over genes of the Pearson correlation across cells, log-normalised imputed "
             "vs pre-Poisson means"),
        _row("mcv_mse", False, "mcv", "mcv", ("mcv",), False,
             "MSE of log-normalised imputed train vs test molecules (not ranked)",
             "the log of a 10 % split is not the log of its expectation: the oracle loses "
             "to no_imputation (UMI: 3.58 against 3.32)"),
        _row("mcv_poisson", False, "mcv", "mcv", ("mcv",), False,
             "Poisson NLL of the test molecules under the rescaled imputation (not ranked)",
             "an observed zero predicts 0 test molecules, so no_imputation pays log(1e-6) "
             "wherever a test molecule falls: a rank-one depth x gene share output beats it "
             "and a kNN average (UMI: 0.302 against 0.423 and 0.308)"),
        _row("mcv_gene_pearson", True, "mcv", "mcv", ("mcv",), True,
             "mean over genes of the Pearson correlation across cells, log-normalised "
             "imputed train vs test molecules"),
        # Open Problems' denoising task (scziva_bench.evaluation.openproblems): reported
        # for comparison with its leaderboard, not ranked (the MSE of logs is mcv_mse's
        # problem; the scaled scores are those two against the controls)
        _row("op_mse", False, "mcv", "mcv", ("mcv",), False,
             "Open Problems' MSE: log-CP10k of the test molecules vs of the output (not "
             "ranked)", "the log of a 10 % split is not the log of its expectation, as for "
             "mcv_mse: the oracle can lose to no_imputation",
             compute="scziva_bench.evaluation.openproblems:mse"),
        _row("op_poisson", False, "mcv", "mcv", ("mcv",), False,
             "Open Problems' Poisson loss, in Batson et al.'s argument order: the test "
             "molecules under the output rescaled by sum(test) / sum(train) (not ranked)",
             "as mcv_poisson: an observed zero predicts no test molecule, so no_imputation "
             "pays log(1e-6) wherever one falls",
             compute="scziva_bench.evaluation.openproblems:poisson"),
        _row("op_mse_scaled", True, "mcv", "mcv", ("mcv",), False,
             "op_mse scaled between Open Problems' controls, computed from the scenario: "
             "0 = the train counts returned (no_denoising), 1 = the test counts returned "
             "(perfect_denoising; not ranked)",
             "a rescaling of op_mse, which is not ranked",
             compute="scziva_bench.evaluation.openproblems:mse_scaled"),
        _row("op_poisson_scaled", True, "mcv", "mcv", ("mcv",), False,
             "op_poisson scaled between Open Problems' controls, computed from the "
             "scenario: 0 = the train counts returned (no_denoising), 1 = the test counts "
             "returned unscaled (perfect_denoising; our perfect, the test at the train "
             "depth, scores above 1; not ranked)",
             "a rescaling of op_poisson, which is not ranked",
             compute="scziva_bench.evaluation.openproblems:poisson_scaled"),
        _row("ari_kmeans", True, "clustering", "clustering", ("labels",), True,
             "adjusted Rand index of k-means clusters vs the labels"),
        _row("nmi_kmeans", True, "clustering", "clustering", ("labels",), True,
             "normalised mutual information of k-means clusters vs the labels"),
        _row("ari_leiden", True, "clustering", "clustering", ("labels",), True,
             "adjusted Rand index of Leiden clusters vs the labels"),
        _row("nmi_leiden", True, "clustering", "clustering", ("labels",), True,
             "normalised mutual information of Leiden clusters vs the labels"),
        # over-smoothing raises the raw silhouette above the truth's: not ranked
        _row("silhouette", True, "clustering", "clustering", ("labels",), False,
             "silhouette width of the labels on the PCA of the imputed data (not ranked)",
             "over-smoothing raises it far above the truth's (a kNN average beats the oracle)"),
        _row("silhouette_gap", False, "clustering", "clustering", ("labels", "truth"), False,
             "|silhouette(imputed) - silhouette(truth)| of the labels (0 best; not ranked)",
             "against the noisy truth counts no_imputation beats the oracle (UMI 20 %: 0.010 "
             "against 0.089); against the true means a constant (gap = the truth's own "
             "silhouette, 0.04 in the full-length regime) beats a kNN average that "
             "exaggerates the separation"),
        _row("de_auroc", True, "de", "de", ("labels", "de_truth"), True,
             "AUROC of |Wilcoxon z| for each group's true DE genes"),
        _row("de_auprc", True, "de", "de", ("labels", "de_truth"), True,
             "average precision of |Wilcoxon z| for each group's true DE genes"),
        _row("de_jaccard_top100", True, "de", "de", ("labels", "truth"), True,
             "Jaccard index of the top-100 DE genes per group, imputed vs the true means "
             "(simulations; the truth counts elsewhere)"),
        _row("de_null_fpr", False, "de", "de", ("labels", "de_truth"), False,
             "share of genes not DE between two groups (simulation truth) that are called DE "
             "(BH p < 0.05) between them after imputation (not ranked; read with de_pair_f1)",
             "a specificity alone: a constant, noise or a rank-one output call nothing and "
             "score 0, the best value"),
        _row("de_pair_f1", True, "de", "de", ("labels", "de_truth"), True,
             "F1 of DE calls (BH p < 0.05) between pairs of groups against the simulated "
             "DE genes (calling nothing scores 0)"),
        _row("genecorr_agreement", True, "genecorr", "genecorr", ("truth",), True,
             "Pearson correlation of gene-gene correlations, imputed vs the true means "
             "(simulations; the truth counts elsewhere)"),
        _row("genecorr_inflation", "zero", "genecorr", "genecorr", ("truth",), False,
             "mean |gene-gene correlation| imputed minus reference (0 best; not ranked)",
             "a constant or noise removes all correlation and scores -mean|C|, which beats "
             "any method that inflates by more (a kNN average, every regime)"),
        _row("trajectory_spearman", True, "trajectory", "trajectory", ("pseudotime",), True,
             "Spearman correlation of diffusion pseudotime (scanpy dpt on the PCA of the "
             "log-normalised output, rooted at the truly earliest cell) with the true order"),
        # new metrics above this line (docs/contributing.md, "Adding a metric")
        _row("runtime_s", False, "resources", "resources", (), False,
             "wall-clock seconds of the impute job"),
        _row("max_rss_mb", False, "resources", "resources", (), False,
             "peak resident memory of the impute job, MB"),
    ]
)

assert tuple(FAMILY_LABELS) == FAMILIES and tuple(FAMILY_SHORT) == FAMILIES

#: name -> MetricSpec, in the order of the tables and figures
SPECS: dict = {s.name: s for s in _LIST}


def names(group=None, family=None, computed=True) -> list:
    """Metric names (in :data:`SPECS` order), optionally of one group or family;
    ``computed=True`` leaves out the resource rows, which the workflow writes itself."""
    return [m for m, s in SPECS.items()
            if (group is None or s.group == group) and (family is None or s.family == family)
            and not (computed and s.group == "resources")]


def ranked() -> list:
    """Names of the metrics that enter the ranks."""
    return [m for m, s in SPECS.items() if s.ranked]


def spec(metric) -> MetricSpec:
    """The spec of ``metric`` (KeyError naming the known metrics if unknown)."""
    try:
        return SPECS[str(metric)]
    except KeyError:
        raise KeyError(f"unknown metric {metric!r}; known: {', '.join(SPECS)}") from None


def higher_is_better(metric) -> bool:
    """True where larger is better; False for smaller-is-better and best-at-zero metrics."""
    return spec(metric).higher_is_better


def _missing(v) -> bool:
    try:
        return v is None or math.isnan(float(v))
    except (TypeError, ValueError):
        return True


def oriented(metric, value) -> float:
    """``value`` turned so that SMALLER is better (``-v``, ``v`` or ``|v|``); NaN / missing
    -> +inf (counts as the worst)."""
    if _missing(value):
        return math.inf
    v = float(value)
    mx = spec(metric).maximize
    if mx == "zero":
        return abs(v)
    return -v if mx is True else v


def sort_key(metric):
    """A key function for ``sorted(values, key=sort_key(metric))``: best first, NaN last."""
    return lambda value: oriented(metric, value)


def better(metric, a, b) -> bool:
    """True where ``a`` is strictly better than ``b`` for ``metric`` (NaN is never better)."""
    return oriented(metric, a) < oriented(metric, b)
