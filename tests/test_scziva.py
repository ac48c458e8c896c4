"""The scZiva method: likelihood, convolution, ordering, imputation rule, API, CLI."""

import math
import subprocess
import sys
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from scipy import stats

import scziva
from scziva import InputError, ZIVAimpute
from scziva.module import (GeneConv1d, ZIVAE, authors_zinb_log_prob, conv_geometry, kl_standard_normal,
                           zinb_log_prob, zinb_objective)
from scziva.ordering import approximate_order, exact_order, order_genes
from scziva.validate import RoundedInputWarning, check_counts

FAST = dict(num_epochs=6, hidden_dim=16, latent_dim=4, batch_size=32)


def small_counts(n_cells=90, n_genes=40, seed=0, groups=3):
    """Negative binomial counts with group structure and varied depth (independent of the
    benchmark's simulator, so the method is tested on its own)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, groups, n_cells)
    base = rng.gamma(0.8, 2.0, n_genes)
    fold = np.exp(rng.normal(0, 1.0, (groups, n_genes)))
    depth = rng.lognormal(0, 0.4, n_cells)
    mean = base[None, :] * fold[labels] * depth[:, None]
    theta = 5.0
    counts = rng.negative_binomial(theta, theta / (theta + mean)).astype(np.float32)
    return counts, labels


# ---------------------------------------------------------------- likelihood

def test_zinb_log_prob_matches_scipy_negative_binomial():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 60, 500).astype(np.float64)
    mu = rng.uniform(0.05, 40, 500)
    theta = rng.uniform(0.1, 50, 500)
    pi = rng.uniform(0.0, 0.9, 500)
    got = zinb_log_prob(*(torch.tensor(a, dtype=torch.float64) for a in (x, pi, mu, theta)), eps=0.0).numpy()
    nb = stats.nbinom(n=theta, p=theta / (theta + mu))
    ref = np.where(x == 0, np.log(pi + (1 - pi) * nb.pmf(0)), np.log1p(-pi) + nb.logpmf(x))
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)


def test_authors_nb_is_scipy_nbinom_with_mean_theta_squared_over_mu():
    """The authors' NB (logits log theta - log mu) is nbinom(n=theta, p=mu/(theta+mu))."""
    rng = np.random.default_rng(2)
    x = rng.integers(0, 60, 500).astype(np.float64)
    mu = rng.uniform(0.05, 40, 500)
    theta = rng.uniform(0.1, 50, 500)
    pi = rng.uniform(1e-3, 0.9, 500)
    got = authors_zinb_log_prob(*(torch.tensor(a, dtype=torch.float64) for a in (x, pi, mu, theta)), eps=0.0).numpy()
    nb = stats.nbinom(n=theta, p=mu / (theta + mu))
    ref = np.where(x == 0, np.log(pi + (1 - pi) * nb.pmf(0)), np.log1p(-pi) + nb.logpmf(x))
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(nb.mean(), theta ** 2 / mu, rtol=1e-12)
    # ... and differs from the mean-mu NB that mode="scziva" uses
    ours = zinb_log_prob(*(torch.tensor(a, dtype=torch.float64) for a in (x, pi, mu, theta)), eps=0.0).numpy()
    assert np.abs(ours - got).max() > 1.0


def test_authors_nb_matches_torch_negative_binomial_bit_for_bit():
    from torch.distributions import NegativeBinomial
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 40, (300,), generator=g).float()
    mu, theta = torch.rand(300, generator=g) * 30 + 1e-4, torch.rand(300, generator=g) * 20 + 1e-4
    pi = torch.rand(300, generator=g).clamp(1e-4, 1 - 1e-4)
    eps = 1e-8
    ll_nb = NegativeBinomial(total_count=theta, logits=torch.log(theta + eps) - torch.log(mu + eps)).log_prob(x)
    one_m = torch.log1p(-pi + eps) + ll_nb
    ref = torch.where(x == 0, torch.logaddexp(torch.log(pi + eps), one_m), one_m)
    assert torch.equal(authors_zinb_log_prob(x, pi, mu, theta), ref)


def test_zinb_probabilities_sum_to_one():
    x = torch.arange(0, 4000, dtype=torch.float64)
    for pi, mu, theta in [(0.3, 5.0, 2.0), (1e-4, 50.0, 0.5), (0.9, 0.2, 10.0)]:
        p = zinb_log_prob(x, *(torch.full_like(x, v) for v in (pi, mu, theta)), eps=0.0).exp().sum()
        assert abs(float(p) - 1.0) < 1e-8


def _objective_inputs(theta_shape, seed=3):
    g = torch.Generator().manual_seed(seed)
    B, G = 6, 9
    x = torch.poisson(torch.rand(B, G, generator=g, dtype=torch.float64) * 4)
    logit = (torch.randn(B, G, generator=g, dtype=torch.float64) * 2).requires_grad_()
    mu = (torch.rand(B, G, generator=g, dtype=torch.float64) * 6 + 0.05).requires_grad_()
    theta = (torch.rand(theta_shape(B, G), generator=g, dtype=torch.float64) * 4 + 0.1).requires_grad_()
    return x, logit, mu, theta


@pytest.mark.parametrize("theta_shape", [lambda B, G: (G,), lambda B, G: (B, G)], ids=["gene", "gene-cell"])
def test_zinb_objective_gradients_match_finite_differences(theta_shape):
    """The hand-derived gradients of the training objective (likelihood, auxiliary term and
    ridge penalty, dispersion per gene or per entry) against central finite differences."""
    x, logit, mu, theta = _objective_inputs(theta_shape)
    c_aux = torch.tensor(0.37, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c, d: zinb_objective(x, a, b, c, d, 0.8)[0],
                                    (logit, mu, theta, c_aux))


def test_zinb_objective_equals_autograd_through_the_likelihood():
    """Values and gradients equal those of autograd through zinb_log_prob plus the auxiliary
    and ridge terms written out directly (an independent implementation)."""
    x, logit, mu, theta = _objective_inputs(lambda B, G: (G,))
    obj, nll, aux = zinb_objective(x, logit, mu, theta, 0.25, 0.5)
    pi = torch.sigmoid(logit)
    ref_nll = -zinb_log_prob(x, pi, mu, theta.expand_as(mu), eps=0.0, constant=False).sum(1)
    ref_aux = (torch.log1p((1 - pi) * mu) - torch.log1p(x)).pow(2).sum(1)
    ref = ref_nll + 0.25 * ref_aux + 0.5 * pi.pow(2).sum(1)
    torch.testing.assert_close(nll, ref_nll, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(aux, ref_aux, rtol=1e-12, atol=1e-12)
    w = torch.arange(1.0, 7.0, dtype=torch.float64)  # a different weight per cell
    got = torch.autograd.grad((obj * w).sum(), (logit, mu, theta))
    want = torch.autograd.grad((ref * w).sum(), (logit, mu, theta))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
    # float32, as in training: close to the float64 values
    obj32 = zinb_objective(x.float(), logit.detach().float(), mu.detach().float(), theta.detach().float(), 0.25, 0.5)[0]
    torch.testing.assert_close(obj32.double(), obj.detach(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("theta_shape", [lambda B, G: (G,), lambda B, G: (B, G)], ids=["gene", "gene-cell"])
def test_zinb_objective_with_given_nonzeros_and_log1p_is_the_same_bits(theta_shape):
    # The caller's non-zero entries (a CSR batch's, csr_nonzero) and log1p(x) only save work.
    from scziva.data import csr_nonzero

    x, logit, mu, theta = _objective_inputs(theta_shape)
    x = x.float()
    logit, mu, theta = (t.detach().float().requires_grad_() for t in (logit, mu, theta))
    rows = sp.csr_matrix(x.numpy())
    given = dict(nonzero=csr_nonzero(rows, torch.device("cpu")), log1p_x=torch.log1p(x))
    outs = []
    for kw in ({}, given):
        obj, nll, aux = zinb_objective(x, logit, mu, theta, 0.3, 0.2, **kw)
        grads = torch.autograd.grad((obj * torch.arange(1.0, 7.0)).sum(), (logit, mu, theta))
        outs.append((obj, nll, aux, *grads))
    for a, b in zip(*outs):
        assert torch.equal(a, b)


def test_csr_nonzero_is_the_dense_batchs_nonzero_entries():
    # A non-canonical CSR (unsorted columns, a duplicate, explicit zeros, a value below 0.5)
    # gives the entries >= 0.5 of its dense form, in torch's row-major order.
    from scziva.data import csr_nonzero

    data = np.array([3.0, 1.0, 0.0, 2.0, 0.25, 1.0, 1.0, 5.0], dtype=np.float32)
    indices = np.array([4, 1, 2, 0, 3, 4, 4, 1])
    indptr = np.array([0, 3, 3, 5, 8])  # row 1 empty; row 3 has column 4 twice
    M = sp.csr_matrix((data, indices, indptr), shape=(4, 6))
    want = (torch.from_numpy(M.toarray()) >= 0.5).nonzero(as_tuple=True)
    got = csr_nonzero(M.copy(), torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    assert [t.dtype for t in got] == [torch.int64, torch.int64]
    assert got[0].tolist() == [0, 0, 2, 3, 3]  # (the duplicate summed, 0 and 0.25 dropped)


def test_batches_of_a_column_permuted_matrix_need_no_sorting_and_leave_it_alone():
    # The gene order permutes columns, which leaves each CSR row's columns unsorted;
    # Batches keeps a canonical copy (sorting every mini-batch cost a fifth of a step).
    from scziva.data import Batches, canonical_csr

    X, _ = small_counts(n_cells=30, n_genes=12)
    M = sp.csr_matrix(X.astype(np.float32))[:, np.random.default_rng(0).permutation(12)]
    assert not M.has_sorted_indices
    before = (M.indices.copy(), M.data.copy())
    data = Batches(M, np.asarray(M.sum(1)).ravel(), torch.device("cpu"))
    assert data.X.has_canonical_format
    assert np.array_equal(M.indices, before[0]) and np.array_equal(M.data, before[1])  # untouched
    assert canonical_csr(data.X) is data.X  # no copy when already canonical
    idx = np.array([7, 3, 21, 0])
    x, lib, nz = data.get(idx, nonzero=True)
    assert torch.equal(x, torch.from_numpy(M[idx].toarray()))
    assert all(torch.equal(a, b) for a, b in zip(nz, (x >= 0.5).nonzero(as_tuple=True)))


def test_kl_closed_form():
    m = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    logv = torch.tensor([[0.0, np.log(4.0)], [np.log(0.25), 0.0]])
    # KL(N(m, s2) || N(0, 1)) = 0.5 * (s2 + m^2 - 1 - log s2), summed over dimensions
    ref = [0.5 * (0 + (4 + 1 - 1 - np.log(4))), 0.5 * ((0.25 + 4 - 1 - np.log(0.25)) + (1 + 1 - 1))]
    np.testing.assert_allclose(kl_standard_normal(m, logv).numpy(), ref, rtol=1e-6)


# ---------------------------------------------------------------- convolution

@pytest.mark.parametrize("n_genes,kernel", [(200, 64), (64, 64), (10, 64), (1, 64)])
def test_gene_conv_matches_torch_conv1d(n_genes, kernel):
    torch.manual_seed(0)
    k, p = conv_geometry(n_genes, kernel)
    ours = GeneConv1d(k, p).double()
    ref = torch.nn.Conv1d(1, 1, k, padding=p).double()
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(7, n_genes, dtype=torch.float64, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    y = ours(x)
    y_ref = ref(x2.unsqueeze(1)).squeeze(1)
    assert y.shape == y_ref.shape == (7, ours.output_length(n_genes))
    torch.testing.assert_close(y, y_ref)
    g = torch.randn_like(y)
    y.backward(g)
    y_ref.backward(g)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad)
    torch.testing.assert_close(ours.bias.grad, ref.bias.grad)
    torch.testing.assert_close(x.grad, x2.grad)


def test_decoder_mean_scales_with_library_size():
    torch.manual_seed(0)
    net = ZIVAE(30, 8, 3, library_size=True)
    z = torch.randn(2, 3)
    _, mu1, _ = net.decode(z, torch.tensor([[100.0], [100.0]]))
    _, mu2, _ = net.decode(z, torch.tensor([[1000.0], [1000.0]]))
    torch.testing.assert_close(mu2, 10 * mu1, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(mu1.sum(1), torch.tensor([100.0, 100.0]), rtol=1e-4, atol=1e-2)


# ---------------------------------------------------------------- gene ordering

def _modules_data(seed=0, n_modules=4, size=15, n_cells=300):
    rng = np.random.default_rng(seed)
    factors = rng.gamma(2.0, 1.0, (n_cells, n_modules)) ** 2
    X = np.concatenate([rng.poisson(np.repeat(factors[:, [m]], size, axis=1) * 3) for m in range(n_modules)], axis=1)
    perm = rng.permutation(X.shape[1])
    module_of = np.repeat(np.arange(n_modules), size)[perm]
    return X[:, perm].astype(np.float32), module_of


@pytest.mark.parametrize("orderer", [exact_order, lambda X: approximate_order(X, rank=8, cluster_size=8, seed=0)])
def test_ordering_puts_planted_modules_together(orderer):
    X, module_of = _modules_data()
    order = orderer(X)
    assert sorted(order.tolist()) == list(range(X.shape[1]))
    seq = module_of[order]
    # each module occupies one contiguous run: the sequence changes module exactly n_modules-1 times
    assert int((seq[1:] != seq[:-1]).sum()) == len(np.unique(module_of)) - 1


def test_order_genes_modes():
    X, _ = _modules_data()
    assert np.array_equal(order_genes(X, "none"), np.arange(X.shape[1]))
    assert np.array_equal(order_genes(X, "auto", exact_max_genes=1000), exact_order(X))
    assert np.array_equal(order_genes(sp.csr_matrix(X), "exact"), exact_order(X))
    with pytest.raises(ValueError, match="unknown gene ordering"):
        order_genes(X, "bogus")


# ---------------------------------------------------------------- imputation rule

def _log1p_nb_sum(m, t):
    """sum_k NB(k; mean m, inverse dispersion t) log1p(k), scipy's pmf summed directly."""
    q = t / (t + m)
    k = np.arange(int(stats.nbinom.ppf(1 - 1e-13, t, q)) + 10)
    return float((stats.nbinom.pmf(k, t, q) * np.log1p(k)).sum())


def _log_fill_reference(pi, mu, theta, posterior):
    """expm1(E[log1p X]), times P(dropout | 0) inside with ``posterior``, by direct sums."""
    out = np.empty(pi.shape, dtype=np.float64)
    for i, (p, m, t) in enumerate(zip(pi.astype(float), mu.astype(float), theta.astype(float))):
        e = _log1p_nb_sum(m, t)
        if posterior:
            e *= p / (p + (1 - p) * (t / (t + m)) ** t)
        out[i] = np.expm1(e)
    return out


def test_expected_log1p_nb_matches_a_direct_sum():
    from scziva.module import expected_log1p_nb
    mus = np.array([1e-4, 0.01, 0.3, 1.0, 3.0, 10.0, 100.0, 3000.0])
    thetas = np.array([0.01, 0.2, 1.0, 5.0, 100.0, 5000.0])
    M, T = (a.ravel() for a in np.meshgrid(mus, thetas))
    want = [_log1p_nb_sum(m, t) for m, t in zip(M, T)]
    for dtype in (torch.float32, torch.float64):
        got = expected_log1p_nb(torch.tensor(M, dtype=dtype), torch.tensor(T, dtype=dtype)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    # the Poisson limit and a hand-worked value: Poisson(1) gives sum_k e^-1 / k! log(1 + k)
    poisson1 = sum(np.exp(-1) / math.factorial(k) * np.log1p(k) for k in range(40))
    got = expected_log1p_nb(torch.tensor([1.0], dtype=torch.float64), torch.tensor([1e8], dtype=torch.float64))
    assert abs(float(got[0]) - poisson1) < 1e-6
    assert expected_log1p_nb(torch.zeros(0), torch.zeros(0)).numel() == 0


def test_dispersion_default_depends_on_the_output():
    X, _ = small_counts()
    _, m_imp = ZIVAimpute(X, seed=3, **FAST)
    _, m_den = ZIVAimpute(X, seed=3, impute_value="denoise", **FAST)
    _, m_auth = ZIVAimpute(X, seed=3, mode="authors", num_epochs=2)
    assert m_imp.config["dispersion"] == "gene"
    assert m_den.config["dispersion"] == "gene-cell" and m_auth.config["dispersion"] == "gene-cell"
    _, m_set = ZIVAimpute(X, seed=3, dispersion="gene-cell", **FAST)
    assert m_set.config["dispersion"] == "gene-cell"
    with pytest.raises(ValueError, match="dispersion"):
        ZIVAimpute(X, dispersion="cell", **FAST)


def test_gene_dispersion_is_learned_on_small_data():
    # Two blocks of genes with the same mean and very different true inverse dispersion
    # (gamma-Poisson draws, no zero inflation). 300 cells at batch 64 is ~5 optimiser steps
    # an epoch: the per-gene dispersion must still leave its starting value (~2.1) and
    # separate the blocks. With the dispersion at the network's learning rate it did not
    # (medians 1.9 and 2.4 here).
    rng = np.random.default_rng(0)
    theta = np.r_[np.full(15, 0.3), np.full(15, 30.0)]
    lam = rng.gamma(theta, 6.0 / theta, (300, 30))
    X = rng.poisson(lam).astype(np.float32)
    _, model = ZIVAimpute(X, seed=0, num_epochs=60, hidden_dim=16, latent_dim=4, batch_size=64,
                          return_params=True)
    assert model.config["dispersion"] == "gene"
    fitted = model.theta[0]
    over, poissonish = np.median(fitted[:15]), np.median(fitted[15:])
    assert over < 1.0 and poissonish > 3.0 and poissonish / over > 4


def test_pi_ridge_heldout_keeps_the_fit_with_the_lower_held_out_loss():
    X, _ = small_counts()
    Y, model = ZIVAimpute(X, seed=3, return_params=True, pi_ridge="heldout", **FAST)
    sel = model.pi_ridge_selection
    assert set(sel) == {0.0, 1.0} and all(np.isfinite(v) for v in sel.values())
    kept = min(sel, key=sel.get)
    assert model.config["pi_ridge"] == kept
    # the kept fit is exactly the fit with that penalty given explicitly (same seed)
    Y_kept, m_kept = ZIVAimpute(X, seed=3, pi_ridge=kept, return_params=True, **FAST)
    assert np.array_equal(Y, Y_kept) and m_kept.pi_ridge_selection is None
    # the penalty pulls the dropout probabilities down
    _, m0 = ZIVAimpute(X, seed=3, pi_ridge=0, return_params=True, **FAST)
    _, m5 = ZIVAimpute(X, seed=3, pi_ridge=5, return_params=True, **FAST)
    assert np.nanmean(m5.pi) < np.nanmean(m0.pi)


def _shallow_and_deep(seed=0):
    """Shallow Poisson counts without dropout (most zeros are sampling zeros) and deep
    counts with half of the non-zeros dropped (most zeros are not)."""
    rng = np.random.default_rng(seed)
    n, g = 120, 50
    rate = rng.gamma(1.0, 0.6, g)[None, :] * rng.lognormal(0, 0.3, n)[:, None]
    shallow = rng.poisson(rate).astype(np.float32)
    deep = rng.poisson(rate * 60).astype(np.float32)
    deep[rng.random(deep.shape) < 0.5] = 0
    return shallow, deep


def test_sampling_zero_share_tells_sampling_zeros_from_dropouts():
    from scziva.data import sampling_zero_share
    shallow, deep = _shallow_and_deep()
    share = lambda X: sampling_zero_share(X, X.sum(1), X.sum(0))  # noqa: E731
    assert 0.8 < share(shallow) < 1.2  # Poisson counts: the zeros are the sampling zeros
    assert share(deep) < 0.2
    assert share(sp.csr_matrix(shallow)) == pytest.approx(share(shallow), rel=1e-12)
    # a seeded sample of the cells gives about the same share
    assert sampling_zero_share(shallow, shallow.sum(1), shallow.sum(0), max_cells=60) == pytest.approx(share(shallow), rel=0.15)
    assert sampling_zero_share(np.ones((3, 4)), np.full(3, 4.0), np.full(4, 3.0)) == 0.0  # no zeros
    # rarely detected genes added to deep data do not move it: only the highest-total genes count
    rng = np.random.default_rng(1)
    wide = np.hstack([deep, (rng.random((deep.shape[0], 400)) < 0.01).astype(np.float32)])
    with_rare = sampling_zero_share(wide, wide.sum(1), wide.sum(0), max_genes=deep.shape[1])
    assert with_rare < 0.2 and sampling_zero_share(wide, wide.sum(1), wide.sum(0)) > 0.5


def test_pi_ridge_auto_is_one_fit_with_the_penalty_chosen_from_the_data(monkeypatch):
    from scziva import core
    shallow, deep = _shallow_and_deep()
    calls = []
    real = core._fit_one

    def counting(*a, **k):
        calls.append(a[1].pi_ridge)
        return real(*a, **k)

    for X, want in ((shallow, 1.0), (deep, 0.0)):
        calls.clear()
        with monkeypatch.context() as m:
            m.setattr(core, "_fit_one", counting)
            Y, model = ZIVAimpute(X, seed=3, **FAST)
        assert calls == [want]  # one fit, with the rule's penalty
        share = model.pi_ridge_selection["sampling_zero_share"]
        assert (share > 0.5) == (want == 1.0)
        assert model.config["pi_ridge"] == want
        assert len(model.history) <= FAST["num_epochs"]
        # the same output as that penalty given explicitly, bit for bit
        Y_fixed, m_fixed = ZIVAimpute(X, seed=3, pi_ridge=want, **FAST)
        assert np.array_equal(Y, Y_fixed) and m_fixed.pi_ridge_selection is None


def test_pi_ridge_resolution_and_bad_values():
    X, _ = small_counts()
    _, m = ZIVAimpute(X, seed=3, impute_value="denoise", **FAST)
    assert m.config["pi_ridge"] == 0.0 and m.pi_ridge_selection is None
    # the rule needs no held-out cells; the held-out selection does
    _, m = ZIVAimpute(X, seed=3, validation_fraction=0.0, **FAST)
    assert m.config["pi_ridge"] in (0.0, 1.0) and set(m.pi_ridge_selection) == {"sampling_zero_share"}
    _, m = ZIVAimpute(X, seed=3, validation_fraction=0.0, pi_ridge="heldout", **FAST)
    assert m.config["pi_ridge"] == 0.0 and m.pi_ridge_selection is None
    _, m = ZIVAimpute(X, seed=3, mode="authors", num_epochs=2)
    assert m.config["pi_ridge"] == 0.0
    for bad in (-1, float("nan"), "big", [1]):
        with pytest.raises(ValueError, match="pi_ridge"):
            ZIVAimpute(X, pi_ridge=bad, **FAST)
    with pytest.raises(ValueError, match="pi_ridge"):
        ZIVAimpute(X, mode="authors", pi_ridge=1.0, num_epochs=2)


def test_pi_ridge_adds_exactly_its_term_to_the_loss():
    from scziva.training import AuxWeight, loss_scziva
    torch.manual_seed(0)
    model = ZIVAE(12, hidden_dim=8, latent_dim=3, kernel=4, dispersion="gene")
    x = torch.tensor(np.random.default_rng(0).poisson(2.0, (5, 12)), dtype=torch.float32)
    lib = x.sum(1, keepdim=True)
    aux_w = AuxWeight()
    torch.manual_seed(1)
    base = loss_scziva(model, aux_w, x, lib, 0.5, 1e-3, 0.1).total
    torch.manual_seed(1)
    pen = loss_scziva(model, aux_w, x, lib, 0.5, 1e-3, 0.1, pi_ridge=2.0).total
    torch.manual_seed(1)
    pi = model(x, lib)[0]
    want = 2.0 * pi.pow(2).sum(-1).mean()
    assert torch.allclose(pen - base, want, rtol=1e-5)


def _logistic_dropout_counts(n_cells=240, n_genes=50, dropout=True, seed=0):
    """Poisson counts whose non-zeros are dropped with probability 1 / (1 + mu / 2), i.e.
    logit(p) = log 2 - log(mu): a dropout curve with slope -1 in the log mean."""
    rng = np.random.default_rng(seed)
    mean = rng.lognormal(0, 0.3, n_cells)[:, None] * np.exp(rng.uniform(np.log(0.2), np.log(40), n_genes))
    X = rng.poisson(mean).astype(np.float32)
    if dropout:
        X[(rng.random(X.shape) < 1 / (1 + mean / 2.0)) & (X > 0)] = 0
    return X


def test_zero_inflation_curve_is_a_dropout_curve_in_the_log_mean():
    # zero_inflation="curve": pi is exactly sigmoid(a + b log mu) with two learned numbers.
    # On counts with a planted logistic dropout the slope turns clearly negative (it starts
    # at 0); on the same counts without dropout the fitted pi is far lower.
    kw = dict(seed=0, num_epochs=80, hidden_dim=16, latent_dim=4, batch_size=64, pi_ridge=0,
              zero_inflation="curve", return_params=True)
    _, model = ZIVAimpute(_logistic_dropout_counts(), **kw)
    assert model.config["zero_inflation"] == "curve"
    a, b = model.module.pi_curve.detach().double().numpy()
    inside = (model.pi > 1e-3) & (model.pi < 1 - 1e-3)
    logit = np.log(model.pi[inside].astype(np.float64)) - np.log1p(-model.pi[inside].astype(np.float64))
    np.testing.assert_allclose(logit, a + b * np.log(model.mu[inside].astype(np.float64)), atol=1e-4)
    assert b < -0.3
    _, clean = ZIVAimpute(_logistic_dropout_counts(dropout=False), **kw)
    assert np.nanmean(clean.pi) < 0.5 * np.nanmean(model.pi)


def test_zero_inflation_values():
    X, _ = small_counts()
    _, m = ZIVAimpute(X, seed=3, **FAST)
    assert m.config["zero_inflation"] == "free" and not hasattr(m.module, "pi_curve")
    with pytest.raises(ValueError, match="zero_inflation"):
        ZIVAimpute(X, zero_inflation="logistic", **FAST)
    with pytest.raises(ValueError, match="zero_inflation"):
        ZIVAimpute(X, mode="authors", zero_inflation="curve", num_epochs=2)


def test_imputation_rule_only_touches_zeros_above_tau():
    X, _ = small_counts()
    Y, model = ZIVAimpute(X, seed=3, tau=0.001, return_params=True, **FAST)
    nz = X > 0
    assert np.array_equal(Y[nz], X[nz])                   # observed counts kept
    fill = (X == 0) & (model.pi > 0.001)
    # default fill: expm1(E[log1p X]), X ~ NB(mu, theta); reference by direct sums
    rows, cols = np.nonzero(fill)
    pick = np.random.default_rng(1).choice(rows.size, 30, replace=False)
    sel = (rows[pick], cols[pick])
    ref = _log_fill_reference(model.pi[sel], model.mu[sel], model.theta[sel], posterior=False)
    np.testing.assert_allclose(Y[sel], ref, rtol=2e-5, atol=1e-6)
    assert np.all(Y[fill] < model.mu[fill])                          # below the NB mean (Jensen)
    Yp, model_p = ZIVAimpute(X, seed=3, tau=0.001, return_params=True, impute_value="log_posterior", **FAST)
    assert np.array_equal(model_p.mu, model.mu, equal_nan=True)      # same fit, another rule
    ref = _log_fill_reference(model.pi[sel], model.mu[sel], model.theta[sel], posterior=True)
    np.testing.assert_allclose(Yp[sel], ref, rtol=2e-5, atol=1e-6)
    assert np.all(Yp[fill] <= Y[fill] * (1 + 1e-6))                  # P(dropout | 0) <= 1
    Ya, model_a = ZIVAimpute(X, seed=3, tau=0.001, return_params=True, impute_value="pi_mu", **FAST)
    assert np.array_equal(Ya[nz], X[nz])
    np.testing.assert_allclose(Ya[fill], ((1 - model_a.pi) * model_a.mu)[fill], rtol=1e-6)  # authors' rule
    assert model.config["impute_value"] == "log_mean" and model_a.config["impute_value"] == "pi_mu"
    assert np.all(Y[(X == 0) & ~fill] == 0)
    assert fill.sum() > 0
    # tau = 1: no probability exceeds it, nothing is imputed
    Y1, _ = ZIVAimpute(X, seed=3, tau=1.0, **FAST)
    assert np.array_equal(Y1, X)


def test_all_zero_cells_and_genes_stay_zero():
    X, _ = small_counts()
    X[5] = 0
    X[:, 7] = 0
    Y, _ = ZIVAimpute(X, seed=0, tau=0.0, **FAST)
    assert np.all(Y[5] == 0) and np.all(Y[:, 7] == 0)
    empty_cells, empty_genes = X.sum(1) == 0, X.sum(0) == 0
    assert np.all(Y[empty_cells] == 0) and np.all(Y[:, empty_genes] == 0)
    others = (X == 0) & ~empty_cells[:, None] & ~empty_genes[None, :]
    assert np.all(Y[others] > 0)   # tau = 0: every other zero is imputed


def test_gene_permutation_is_restored():
    X, _ = small_counts()
    Y, model = ZIVAimpute(X, seed=2, **FAST)
    perm = np.random.default_rng(0).permutation(X.shape[1])
    inv = np.argsort(perm)
    # the same model input: give the permuted matrix the equivalent gene order
    Yp, _ = ZIVAimpute(X[:, perm], seed=2, gene_order=inv[model.gene_order], **FAST)
    assert np.array_equal(Yp, Y[:, perm])


def test_same_seed_same_output_bit_for_bit_and_seed_matters():
    X, _ = small_counts()
    a, _ = ZIVAimpute(X, seed=11, **FAST)
    b, _ = ZIVAimpute(X, seed=11, **FAST)
    c, _ = ZIVAimpute(X, seed=12, **FAST)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_sparse_dataframe_and_list_inputs_agree_with_dense():
    X, _ = small_counts()
    dense, _ = ZIVAimpute(X, seed=4, **FAST)
    sparse, _ = ZIVAimpute(sp.csr_matrix(X), seed=4, **FAST)
    np.testing.assert_allclose(sparse, dense, rtol=1e-5, atol=1e-5)
    df = pd.DataFrame(X, index=[f"c{i}" for i in range(X.shape[0])], columns=[f"g{j}" for j in range(X.shape[1])])
    out, _ = ZIVAimpute(df, seed=4, **FAST)
    assert isinstance(out, pd.DataFrame)
    assert list(out.index) == list(df.index) and list(out.columns) == list(df.columns)
    np.testing.assert_allclose(out.to_numpy(), dense, rtol=1e-5, atol=1e-5)


def test_fewer_genes_than_kernel_and_tiny_inputs():
    X, _ = small_counts(n_cells=30, n_genes=5)
    Y, _ = ZIVAimpute(X, seed=0, **FAST)
    assert Y.shape == X.shape and np.all(np.isfinite(Y))
    Y1, _ = ZIVAimpute(X[:, :1], seed=0, **FAST)
    assert Y1.shape == (30, 1)


def test_authors_mode_runs_full_batch_for_exactly_num_epochs():
    X, _ = small_counts()
    Y, model = ZIVAimpute(X, mode="authors", num_epochs=7, hidden_dim=16, latent_dim=4)
    assert model.mode == "authors" and len(model.history) == 7 and model.stopped_epoch == 7
    assert model.config["impute_value"] == "pi_mu"      # the authors' rule in their mode
    assert np.array_equal(Y[X > 0], X[X > 0])
    w = [h["w_aux"] for h in model.history]
    assert all(0.5 <= v <= 1.5 for v in w)


def test_ziva_import_path_and_documented_call():
    from ZIVA import ZIVAimpute as Z
    assert Z is ZIVAimpute
    X, _ = small_counts(n_cells=40, n_genes=12)
    X_imp, _ = Z(X, seed=1, device="cpu", num_epochs=3, lr=1e-3, hidden_dim=8, latent_dim=2, verbose=False, tau=0.001)
    assert X_imp.shape == X.shape and X_imp.dtype == np.float32


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("bad,match", [
    (np.array([[1.0, np.nan], [0.0, 2.0]]), "NaN"),
    (np.array([[1.0, np.inf], [0.0, 2.0]]), "infinite"),
    (np.array([[1.0, -3.0], [0.0, 2.0]]), "negative"),
    (np.zeros((0, 5)), "empty"),
    (np.array([["1", "x"], ["0", "2"]]), "non-numeric"),
    (np.ones(5), "2-D"),
    (None, "no data"),
])
def test_bad_input_raises_one_clear_error(bad, match):
    with pytest.raises(InputError, match=match):
        ZIVAimpute(bad, **FAST)


def test_a_few_non_integer_counts_are_rounded_with_a_warning():
    X = np.array([[0.4, 1.0, 3.0], [2.0, 3.5, 1.0], [4.0, 1.0, 2.0]])  # 2 of 9 non-integer
    with pytest.warns(RoundedInputWarning, match="2 non-integer"):
        M, notes = check_counts(X, "test")
    assert np.array_equal(M, [[0, 1, 3], [2, 4, 1], [4, 1, 2]]) and notes
    Y = np.random.default_rng(0).poisson(3, (30, 8)).astype(float)
    Y[0, :3] += 0.25
    with pytest.warns(RoundedInputWarning):
        ZIVAimpute(Y, **FAST)


@pytest.mark.parametrize("kind,X,looks", [
    ("log1p(CP10k)", np.log1p(np.random.default_rng(1).poisson(3, (30, 8)) * 1e4 / 24.0), "log-transformed"),
    ("CPM", np.random.default_rng(2).poisson(3, (30, 8)) * 1e6 / 97.0, "normalised"),
])
def test_values_that_are_not_counts_are_refused_not_rounded(kind, X, looks):
    # mostly non-integer: imputing them as counts would be silently wrong
    with pytest.raises(InputError, match=rf"ZIVAimpute input: \d+% of the non-zero values are not integers.*{looks}"):
        ZIVAimpute(X, **FAST)
    X_counts = np.rint(X)  # the way out the message names: round values that really are counts
    assert ZIVAimpute(X_counts, **FAST)[0].shape == X.shape


def test_anndata_api_refuses_log1p_x_but_reads_a_counts_layer_beside_it():
    X, _ = small_counts(n_cells=40, n_genes=12)
    adata = ad.AnnData(X=np.log1p(X).astype(np.float32))
    adata.layers["counts"] = sp.csr_matrix(X)
    adata.uns["log1p"] = {"base": None}
    with pytest.raises(InputError, match=r"adata.X: uns\['log1p'\] is set.*layer='counts'"):
        scziva.impute(adata, **FAST)
    scziva.impute(adata, layer="counts", **FAST)  # the usual scanpy layout: fine
    assert "scziva" in adata.layers


def test_anndata_api_options_are_keyword_only():
    X, _ = small_counts(n_cells=40, n_genes=12)
    adata = ad.AnnData(X=X)
    with pytest.raises(TypeError):
        scziva.impute(adata, None, "mine")  # scanpy style: nothing positional after adata


def test_anndata_api_sparse_in_sparse_out_where_it_is_smaller():
    X, _ = small_counts(n_cells=40, n_genes=12)
    X = X * (np.random.default_rng(3).random(X.shape) < 0.3)  # about 70 % zeros
    # tau above every dropout probability: no zero is filled, the output is as sparse as the input
    out = scziva.impute(ad.AnnData(X=sp.csr_matrix(X)), copy=True, tau=0.9999, **FAST)
    assert sp.issparse(out.layers["scziva"])
    np.testing.assert_array_equal(out.layers["scziva"].toarray(), X)
    # the default fills almost every zero: dense is the smaller form
    dense = scziva.impute(ad.AnnData(X=sp.csr_matrix(X)), copy=True, **FAST)
    assert isinstance(dense.layers["scziva"], np.ndarray)
    # dense in, dense out
    assert isinstance(scziva.impute(ad.AnnData(X=X), copy=True, tau=0.9999, **FAST).layers["scziva"], np.ndarray)


def test_unavailable_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        ZIVAimpute(np.ones((4, 3)), device="cuda", **FAST)


# ---------------------------------------------------------------- accuracy

def test_imputation_beats_no_imputation_on_a_small_simulation():
    truth, labels = small_counts(n_cells=240, n_genes=120, seed=5)
    rng = np.random.default_rng(0)
    drop = (truth > 0) & (rng.random(truth.shape) < 0.5)
    observed = np.where(drop, 0, truth).astype(np.float32)
    Y, _ = ZIVAimpute(observed, seed=1)

    def log_mse(A):
        return float(np.mean((np.log1p(A) - np.log1p(truth)) ** 2))

    assert log_mse(Y) < 0.6 * log_mse(observed)
    r = np.corrcoef(np.log1p(Y[drop]), np.log1p(truth[drop]))[0, 1]
    assert r > 0.6


# ---------------------------------------------------------------- AnnData and CLI

def test_anndata_api_writes_layers():
    X, _ = small_counts()
    adata = ad.AnnData(X=sp.csr_matrix(X))
    adata.layers["counts"] = adata.X.copy()
    out = scziva.impute(adata, layer="counts", copy=True, return_dropout=True, return_latent=True, seed=0,
                        **FAST)
    assert "scziva" not in adata.layers      # copy=True leaves the input alone
    assert out.layers["scziva"].shape == X.shape
    assert out.layers["scziva_pi"].shape == X.shape and out.obsm["X_scziva"].shape == (X.shape[0], 4)
    assert out.uns["scziva"]["seed"] == 0
    with pytest.raises(InputError, match="layer 'nope' not found"):
        scziva.impute(adata, layer="nope")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "scziva.cli", *map(str, args)], capture_output=True, text=True)


def test_cli_round_trip_csv_and_h5ad(tmp_path):
    X, _ = small_counts(n_cells=50, n_genes=20)
    df = pd.DataFrame(X, index=[f"cell{i}" for i in range(50)], columns=[f"g{j}" for j in range(20)])
    src = tmp_path / "in.csv"
    df.to_csv(src)
    before = src.read_bytes()
    out = tmp_path / "out.csv"
    r = _cli("impute", src, out, "--epochs", 3, "--seed", 5, "--quiet")
    assert r.returncode == 0, r.stderr
    got = pd.read_csv(out, index_col=0)
    assert list(got.index) == list(df.index) and list(got.columns) == list(df.columns)
    assert np.array_equal(got.to_numpy()[X > 0], X[X > 0])
    assert src.read_bytes() == before
    same, _ = ZIVAimpute(X, seed=5, num_epochs=3)
    np.testing.assert_allclose(got.to_numpy(), same, rtol=1e-5)

    # genes x cells TSV in, h5ad out
    tsv = tmp_path / "in.tsv"
    df.T.to_csv(tsv, sep="\t")
    h5 = tmp_path / "out.h5ad"
    r = _cli("impute", tsv, h5, "--genes-by-cells", "--epochs", 3, "--seed", 5, "--quiet")
    assert r.returncode == 0, r.stderr
    a = ad.read_h5ad(h5)
    assert a.shape == (50, 20) and list(a.obs_names) == list(df.index)
    np.testing.assert_allclose(a.X, got.to_numpy(), rtol=1e-5)
    np.testing.assert_array_equal(a.layers["counts"], X)

    # h5ad in, h5ad out keeps obs
    src_h5 = tmp_path / "in.h5ad"
    adata = ad.AnnData(X=sp.csr_matrix(X), obs=pd.DataFrame({"cell_type": ["a"] * 50}, index=df.index))
    adata.write_h5ad(src_h5)
    r = _cli("impute", src_h5, tmp_path / "o2.h5ad", "--epochs", 2, "--quiet")
    assert r.returncode == 0, r.stderr
    assert list(ad.read_h5ad(tmp_path / "o2.h5ad").obs["cell_type"]) == ["a"] * 50


@pytest.mark.parametrize("content,match", [
    ("", "empty"),
    (",g1,g2\nc1,1,abc\nc2,0,2\n", "non-numeric value 'abc' at row 'c1'"),
    (",g1,g2\nc1,1,-2\nc2,0,2\n", "negative"),
    (",g1,g1\nc1,1,2\nc2,0,2\n", "1 duplicate gene name(s) ('g1')"),
    (",g1,g2\nc1,1,\nc2,0,2\n", "missing value"),
    (",c1,c2\nENSG00000000003,1,2\nENSG00000000005,0,2\n", "genes-by-cells"),
])
def test_cli_bad_input_one_line_nonzero_exit_no_output(tmp_path, content, match):
    src = tmp_path / "bad.csv"
    src.write_text(content)
    out = tmp_path / "out.csv"
    r = _cli("impute", src, out, "--quiet", "--epochs", 2)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scziva: error:") and match in lines[0], r.stderr
    assert "bad.csv" in lines[0]
    assert not out.exists() and not list(tmp_path.glob(".out.csv*"))
    assert src.read_text() == content


def test_cli_refuses_to_overwrite(tmp_path):
    src = tmp_path / "in.csv"
    pd.DataFrame(np.ones((3, 2))).to_csv(src)
    r = _cli("impute", src, src)
    assert r.returncode == 2 and "never overwritten" in r.stderr
    (tmp_path / "o.csv").write_text("keep")
    r = _cli("impute", src, tmp_path / "o.csv")
    assert r.returncode == 2 and "--overwrite" in r.stderr
    assert (tmp_path / "o.csv").read_text() == "keep"


def test_cli_help_explains_inputs():
    r = _cli("impute", "--help")
    assert r.returncode == 0
    for word in ("raw counts", "--genes-by-cells", "--tau", "--epochs", "--device", "examples"):
        assert word in r.stdout


def test_other_imputed_values():
    X, _ = small_counts()
    Ym, model = ZIVAimpute(X, seed=3, impute_value="mu", return_params=True, **FAST)
    fill = (X == 0) & (model.pi > 0.001)
    np.testing.assert_allclose(Ym[fill], model.mu[fill], rtol=1e-6)
    Yp, _ = ZIVAimpute(X, seed=3, impute_value="posterior", **FAST)
    # P(dropout | observed 0) = pi / (pi + (1 - pi) NB(0)) lies in [pi, 1], so the value in [pi * mu, mu]
    assert np.all(Yp[fill] <= model.mu[fill] * (1 + 1e-5))
    assert np.all(Yp[fill] >= (model.pi * model.mu)[fill] * (1 - 1e-5))
    assert np.array_equal(Yp[X > 0], X[X > 0])
    with pytest.raises(ValueError, match="impute_value"):
        ZIVAimpute(X, impute_value="median", **FAST)


def _posterior_reference(X, pi, mu, theta):
    """E[rate | x] by summing over a grid of rates under Gamma(theta, theta/mu) x Poisson(x),
    times P(not a dropout | x) (numerical integration, independent of the closed form)."""
    out = np.empty_like(X, dtype=np.float64)
    for idx in np.ndindex(X.shape):
        x, p, m, t = float(X[idx]), float(pi[idx]), float(mu[idx]), float(theta[idx])
        # a log-spaced grid (the Gamma density may be infinite at 0), d lambda = lambda du
        lam = np.exp(np.linspace(np.log(1e-14), np.log(m * 30 + x * 3 + 30), 60001))
        logw = stats.gamma.logpdf(lam, a=t, scale=m / t) + stats.poisson.logpmf(x, lam) + np.log(lam)
        w = np.exp(logw - logw.max())
        post = float((lam * w).sum() / w.sum())
        if x == 0:
            nb0 = np.exp(t * (np.log(t) - np.log(t + m)))
            post *= 1 - p / (p + (1 - p) * nb0)
        out[idx] = post
    return out


def test_denoise_is_the_zinb_posterior_mean_of_every_entry():
    X, _ = small_counts()
    Y, model = ZIVAimpute(X, seed=3, impute_value="denoise", return_params=True, **FAST)
    modelled = np.isfinite(model.pi)                  # genes with no counts are not modelled (stay 0)
    assert np.all(Y[~modelled] == 0)
    rows, cols = np.nonzero(modelled)
    pick = np.random.default_rng(0).choice(rows.size, 40, replace=False)
    sel = (rows[pick], cols[pick])
    ref = _posterior_reference(X[sel], model.pi[sel], model.mu[sel], model.theta[sel])
    np.testing.assert_allclose(Y[sel], ref, rtol=2e-3)
    Yz, model_z = ZIVAimpute(X, seed=3, impute_value="zinb_mean", return_params=True, **FAST)
    np.testing.assert_allclose(Yz[modelled], ((1 - model_z.pi) * model_z.mu)[modelled], rtol=1e-6)
    nz = X > 0
    assert not np.array_equal(Y[nz], X[nz])          # observed non-zeros are replaced too
    # the same fit as an imputing one without the penalty (the denoisers use none): only the output rule differs
    Yd, model_d = ZIVAimpute(X, seed=3, return_params=True, impute_value="mu", dispersion="gene-cell",
                             pi_ridge=0, **FAST)
    assert np.array_equal(model_d.mu, model.mu, equal_nan=True)
    assert np.array_equal(Yd[nz], X[nz])              # the default keeps them bit for bit


def test_denoise_keeps_empty_cells_and_genes_zero():
    X, _ = small_counts()
    X[3] = 0
    X[:, 2] = 0
    Y, _ = ZIVAimpute(X, seed=0, impute_value="denoise", **FAST)
    assert np.all(Y[3] == 0) and np.all(Y[:, 2] == 0)
    assert np.all(Y[X.sum(1) > 0][:, X.sum(0) > 0] > 0)


def test_pieces_compose_to_the_public_call():
    """settings -> prepare_data -> fit -> impute_batches gives ZIVAimpute's output."""
    from scziva.core import fit, impute_batches, resolve_device
    from scziva.data import prepare_data
    from scziva.settings import ZivaSettings
    from scziva.validate import check_counts as cc
    X, _ = small_counts()
    Y, model = ZIVAimpute(X, seed=5, **FAST)
    s = ZivaSettings(seed=5, **FAST)
    prepared = prepare_data(cc(X, "x")[0], s)
    net, plan, data = fit(prepared, s, resolve_device("cpu"))
    out, params = impute_batches(net, data, prepared, s)
    assert params == {}
    assert np.array_equal(out, Y)
    assert plan.stopped_epoch == model.stopped_epoch and len(plan.history) == len(model.history)
    assert np.array_equal(prepared.full_gene_order(), model.gene_order)


def test_losses_are_named_and_kl_weight_ramps():
    from scziva.training import AuxWeight, Losses, kl_weight, loss_scziva
    assert kl_weight(0, 10) == 0.0 and kl_weight(5, 10) == 0.5 and kl_weight(50, 10) == 1.0
    assert kl_weight(0, 0) == 1.0
    torch.manual_seed(0)
    net = ZIVAE(12, 8, 2)
    x = torch.poisson(torch.full((6, 12), 3.0))
    losses = loss_scziva(net, AuxWeight(), x, x.sum(1, keepdim=True), 0.5, 1e-3, 0.1)
    assert isinstance(losses, Losses) and losses._fields == ("total", "nll", "kl", "aux", "w_aux")
    # total = mean over cells of nll + kl_w * kl + aux_scale * w * aux, plus the pull on w
    ref = losses.nll + 0.5 * losses.kl + 0.1 * losses.w_aux * losses.aux + 1e-3 * (losses.w_aux - 1) ** 2
    torch.testing.assert_close(losses.total, ref)


def test_settings_reject_bad_values_with_one_clear_message():
    from scziva.settings import ZivaSettings
    with pytest.raises(ValueError, match="unknown mode"):
        ZivaSettings(mode="fast")
    with pytest.raises(ValueError, match="num_epochs"):
        ZivaSettings(num_epochs=0)


def test_early_stopping_keeps_the_best_weights_from_the_first_judged_epoch():
    from scziva.training import EarlyStopping
    net = torch.nn.Linear(2, 1)
    stopper = EarlyStopping(patience=2, min_delta=0.0)
    states = []
    for monitor in (5.0, 4.0, 4.5, 4.6):
        with torch.no_grad():
            net.weight.fill_(monitor)
        states.append(monitor)
        stop = stopper.update(monitor, net)
    assert stop and stopper.best == 4.0
    stopper.restore(net)
    assert float(net.weight.detach()[0, 0]) == 4.0
    # the first judged epoch counts as an improvement (best starts at +inf)
    first = EarlyStopping(patience=1, min_delta=1e-3)
    assert first.update(7.0, net) is False and first.best == 7.0 and first.best_state is not None


def test_early_stopping_keeps_small_gains_but_waits_only_for_large_ones():
    """A gain below min_delta updates the kept weights without restarting the wait."""
    from scziva.training import EarlyStopping
    net = torch.nn.Linear(2, 1)
    stopper = EarlyStopping(patience=3, min_delta=0.01)
    stops = []
    for monitor in (100.0, 99.5, 99.25, 99.0):  # each a 0.25-0.5 % gain: too small to wait for
        with torch.no_grad():
            net.weight.fill_(monitor)
        stops.append(stopper.update(monitor, net))
    assert stops == [False, False, False, True]
    stopper.restore(net)
    assert stopper.best == 99.0 and float(net.weight.detach()[0, 0]) == 99.0
    again = EarlyStopping(patience=2, min_delta=0.01)
    assert [again.update(m, net) for m in (100.0, 98.0, 97.5, 97.4)] == [False, False, False, True]
    assert again.update(float("nan"), net) and again.best == 97.4


def test_benchmark_runs_scziva_denoise():
    from scziva_bench import methods
    X, _ = small_counts(n_cells=60, n_genes=20)
    adata = ad.AnnData(X=sp.csr_matrix(X))
    adata.layers["counts"] = adata.X.copy()
    assert "scziva_denoise" in methods.available()
    assert methods.defaults("scziva_denoise")["impute_value"] == "denoise"
    fast = dict(num_epochs=3, hidden_dim=8, latent_dim=2)
    Y = methods.run("scziva_denoise", adata, seed=0, device="cpu", **fast)
    Yd = methods.run("scziva", adata, seed=0, device="cpu", **fast)
    nz = X > 0
    assert np.array_equal(Yd[nz], X[nz]) and not np.array_equal(Y[nz], X[nz])


def test_log1p_table_matches_the_quadrature_per_entry():
    """The per-gene table (default output, gene-wise dispersion) against the exact
    quadrature, over means 1e-4 .. 1e5 and dispersions 1e-3 .. 1e4."""
    from scziva.module import Log1pNBTable, expected_log1p_nb

    g = torch.Generator().manual_seed(0)
    theta = torch.exp(torch.empty(200).uniform_(math.log(1e-3), math.log(1e4), generator=g))
    mu = torch.exp(torch.empty(300, 200).uniform_(math.log(1e-4), math.log(1e5), generator=g))
    table = Log1pNBTable(theta, mu_max=1e5, points=256)  # the points core.log1p_table uses
    exact = expected_log1p_nb(mu.double(), theta.double().expand_as(mu))
    rel = ((table(mu).double() - exact).abs() / exact).max()
    assert rel < 1e-5, float(rel)
    genes = torch.tensor([0, 5, 199])
    np.testing.assert_allclose(table(mu[3, genes], genes).numpy(), table(mu)[3, genes].numpy(), rtol=1e-6)


def test_log1p_table_for_many_genes_interpolates_in_theta_too():
    """Above ``theta_points`` genes the table is read off a grid in (log mu, log theta):
    still within 1e-5 of the per-entry quadrature over eight decades of theta."""
    from scziva.module import Log1pNBTable, expected_log1p_nb

    g = torch.Generator().manual_seed(1)
    theta = torch.exp(torch.empty(1500).uniform_(math.log(1e-3), math.log(1e4), generator=g))
    mu = torch.exp(torch.empty(40, 1500).uniform_(math.log(1e-4), math.log(1e5), generator=g))
    table = Log1pNBTable(theta, mu_max=1e5, points=256)
    assert table.table.numel() == 1500 * 256
    exact = expected_log1p_nb(mu.double(), theta.double().expand_as(mu))
    rel = ((table(mu).double() - exact).abs() / exact).max()
    assert rel < 1.5e-5, float(rel)


def test_log1p_table_lookup_is_the_catmull_rom_cubic_through_its_points():
    """The lookup reads per-interval coefficients; it must give the table's own points at
    the grid nodes and, between them, the Catmull-Rom cubic written out by hand from the
    four neighbouring points (the missing neighbour at either end extrapolated linearly)."""
    from scziva.module import Log1pNBTable

    theta = torch.tensor([0.05, 1.0, 40.0])
    table = Log1pNBTable(theta, mu_max=1e4, points=64)
    pts = table.table.reshape(3, 64).double()
    K = 64
    for gene in range(3):
        for pos in (0.0, 0.25, 1.5, 17.0, 30.7, 61.9, 62.5):
            i = int(math.floor(pos))
            t = pos - i
            p1, p2 = pts[gene, i], pts[gene, i + 1]
            p0 = pts[gene, i - 1] if i > 0 else 2 * p1 - p2
            p3 = pts[gene, i + 2] if i < K - 2 else 2 * p2 - p1
            by_hand = p1 + 0.5 * t * ((p2 - p0) + t * ((2 * p0 - 5 * p1 + 4 * p2 - p3) + t * (3 * (p1 - p2) + p3 - p0)))
            mu = torch.tensor([math.exp(table.lo + pos * table.step)])
            got = table(mu, torch.tensor([gene]))
            assert abs(math.log(float(got)) - float(by_hand)) < 2e-5, (gene, pos)


def test_fill_over_the_whole_batch_equals_the_gathered_fill():
    """When most entries are filled the fill is computed for the whole batch and the
    observed entries put back: bit for bit what filling the gathered entries gives."""
    from scziva.core import fill_value, impute_rule
    from scziva.module import Log1pNBTable
    from scziva.settings import ZivaSettings

    g = torch.Generator().manual_seed(3)
    theta = torch.exp(torch.empty(50).uniform_(-2, 3, generator=g))
    mu = torch.exp(torch.empty(30, 50).uniform_(-4, 6, generator=g))
    pi = torch.rand(30, 50, generator=g)
    x = torch.where(torch.rand(30, 50, generator=g) < 0.3, torch.randint(1, 9, (30, 50), generator=g).float(),
                    torch.zeros(30, 50))
    table = Log1pNBTable(theta, mu_max=1e4, points=256)
    s = ZivaSettings(tau=0.2)
    fill = (x == 0) & (pi > s.tau)
    assert 2 * int(fill.sum()) > fill.numel()  # the whole-batch path
    th = theta.expand_as(mu)
    expected = x.clone()
    expected[fill] = fill_value("log_mean", pi[fill], mu[fill], th[fill], table=table, genes=fill.nonzero()[:, 1])
    got = impute_rule(x, pi, mu, th, s, table)
    assert torch.equal(got, expected)
    assert torch.equal(got[x > 0], x[x > 0]) and torch.equal(got[(x == 0) & ~fill], x[(x == 0) & ~fill])


def test_training_uses_the_fused_adam_on_cpu():
    from scziva.module import ZIVAE
    from scziva.settings import ZivaSettings
    from scziva.training import FusedAdam, MiniBatchPlan, Reporter

    plan = MiniBatchPlan(ZIVAE(20, 8, 4, dispersion="gene"), ZivaSettings(), Reporter(1, False, False),
                         np.random.default_rng(0))
    assert isinstance(plan.opt, FusedAdam)
    assert [g["lr"] for g in plan.opt.param_groups] == [1e-3, 1e-3 * 10.0]  # the dispersion group: THETA_LR_FACTOR


def test_fused_adam_takes_torch_adams_steps_bit_for_bit():
    # Reference: torch.optim.Adam(fused=True) on a copy of the same model, two parameter
    # groups at different learning rates, a parameter that gets no gradient in some steps.
    from scziva.training import FusedAdam

    torch.manual_seed(0)
    ours = torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    ref = torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    ref.load_state_dict(ours.state_dict())

    def groups(m):
        return [{"params": list(m[0].parameters())}, {"params": list(m[2].parameters()), "lr": 0.05}]

    opt_ours, opt_ref = FusedAdam(groups(ours), 0.01), torch.optim.Adam(groups(ref), lr=0.01, fused=True)
    for step in range(12):
        x = torch.randn(16, 7)
        for model, opt in ((ours, opt_ours), (ref, opt_ref)):
            opt.zero_grad(set_to_none=True)
            loss = model(x).pow(2).sum() if step % 4 else model[0](x).pow(2).sum()  # layer 2 idle
            loss.backward()
            opt.step()
    for a, b in zip(ours.parameters(), ref.parameters()):
        assert torch.equal(a, b)
    assert not torch.equal(ours[2].weight, torch.zeros_like(ours[2].weight))


def test_a_fit_does_not_import_the_compiler():
    # torch.optim imports torch._dynamo (about 2 s) the first time an optimiser is built;
    # FusedAdam exists so that a fit does not pay for it.
    code = ("import sys, numpy as np; from scziva import ZIVAimpute; "
            "ZIVAimpute(np.random.default_rng(0).poisson(1.0, (30, 12)), num_epochs=2); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_float16_input_is_checked_without_overflow_warnings():
    X, _ = small_counts(n_cells=40, n_genes=12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "overflow encountered in cast" came from 2^24 in float16
        M, _ = check_counts(X.astype(np.float16), "half")  # (scipy.sparse has no float16)
    np.testing.assert_array_equal(M, X)


def test_output_through_the_table_equals_the_quadrature_output(monkeypatch):
    import scziva.core as core

    X, _ = small_counts(n_cells=60, n_genes=20)
    monkeypatch.setattr(core, "TABLE_MIN_CELLS", 10 ** 9)  # per-entry quadrature
    exact, _ = ZIVAimpute(X, seed=4, pi_ridge=0.0, **FAST)
    monkeypatch.setattr(core, "TABLE_MIN_CELLS", 0)  # the per-gene table (used from 2,048 cells)
    table, _ = ZIVAimpute(X, seed=4, pi_ridge=0.0, **FAST)
    np.testing.assert_array_equal(table[X > 0], X[X > 0])
    np.testing.assert_allclose(table, exact, rtol=2e-5, atol=1e-6)


def test_decoder_starts_at_the_average_profile():
    """With the decoder's weights at zero, the mean after start_at_average_profile is each
    cell's library size times the gene's share of all counts (a hand-worked profile)."""
    totals = np.array([1.0, 3.0, 0.0, 6.0])
    net = ZIVAE(4, hidden_dim=8, latent_dim=3, dispersion="gene")
    net.start_at_average_profile(totals)
    with torch.no_grad():
        net.fc4.weight.zero_()
        net.fc4.bias[:4] = 0.0  # the pi head (the first of the decoder's outputs)
        pi, mu, _ = net.decode(torch.randn(2, 3), torch.tensor([[10.0], [50.0]]))
    share = np.array([0.1, 0.3, 0.0, 0.6])
    np.testing.assert_allclose(mu.numpy(), np.maximum(np.outer([10.0, 50.0], share), 1e-4), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pi.numpy(), 0.5)


def test_output_does_not_depend_on_the_output_batch_size(monkeypatch):
    """The output is computed in batches of at most IMPUTE_ENTRIES entries (fewer cells per
    batch when genes are many); one cell per batch gives the output of one batch, to float32
    rounding."""
    import scziva.core as core

    assert core.impute_batch_cells(20_000) == core.IMPUTE_ENTRIES // 20_000
    assert core.impute_batch_cells(100) == core.IMPUTE_BATCH
    assert core.impute_batch_cells(10 ** 8) == 1
    X, _ = small_counts(n_cells=60, n_genes=20)
    whole, _ = ZIVAimpute(X, seed=4, pi_ridge=0.0, **FAST)
    monkeypatch.setattr(core, "IMPUTE_ENTRIES", 20)  # one cell per batch
    assert core.impute_batch_cells(20) == 1
    single, _ = ZIVAimpute(X, seed=4, pi_ridge=0.0, **FAST)
    np.testing.assert_allclose(single, whole, rtol=1e-5, atol=1e-6)  # float32 products of other shapes
