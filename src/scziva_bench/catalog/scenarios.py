"""The scenario-id grammar, defined once (docs/contract.md, "Scenario ids").

A scenario id names one perturbation of a dataset and is the ``{scenario}`` wildcard of
the workflow: ``dropout50_s1`` (50 % of the non-zero counts dropped, seed 1),
``mask10_s2`` (10 % masked, seed 2), ``mcv_s3`` (molecular cross-validation split, seed
3), ``sampling_s1`` (no dropout on top: the counts as sampled, seed 1; a simulation or a
downsampled dataset draws new counts per seed), ``split`` (a molecular cross-validation
split that came with the data: Open Problems' train.h5ad / test.h5ad pair, dataset key
``test_path``) and ``none`` (the data as given). Rates are whole percents from 1 to 99.

This module has no dependencies beyond the standard library, so that the Snakefile (at
parse time), the library and the figures all use the same grammar. Every other place
that needs to build, parse or constrain an id calls it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["KINDS", "RATED", "SEEDED", "MCV_KINDS", "MCV_TRAIN_FRACTION", "WILDCARD", "ScenarioId", "format_id", "parse_id", "is_id",
           "ids_from_spec", "group_of", "seed_of", "label_of", "rate_pct", "check_seed"]

KINDS = ("dropout", "mask", "mcv", "sampling", "split", "none")
RATED = ("dropout", "mask")  # kinds whose id carries a rate
SEEDED = ("mcv", "sampling")  # kinds whose id carries a seed only
UNSEEDED = ("split", "none")  # kinds whose id is the kind itself
#: kinds scored by molecular cross-validation (train molecules in, test molecules as truth)
MCV_KINDS = ("mcv", "split")
#: share of each count's molecules that methods see in an MCV scenario (the rest is the
#: test truth); a made scenario records it in ``uns["scenario"]["train_fraction"]``, which
#: every later step reads
MCV_TRAIN_FRACTION = 0.9

#: regular expression of a valid id (no anchors: usable as a Snakemake wildcard constraint)
WILDCARD = r"none|split|(?:dropout|mask)(?:0?[1-9]|[1-9]\d)_s\d+|(?:mcv|sampling)_s\d+"
_ID_RE = re.compile(rf"^(?:{WILDCARD})$")
_PARTS = re.compile(r"^(?:(?P<kind>dropout|mask)(?P<pct>\d{1,2})_s(?P<seed>\d+)"
                    r"|(?P<skind>mcv|sampling)_s(?P<mseed>\d+)|(?P<none>none|split))$")
_SEED_SUFFIX = re.compile(r"_s\d+$")


class ScenarioId(NamedTuple):
    """A parsed id: ``rate`` is a fraction (None for mcv, sampling, split and none);
    ``split`` and ``none`` have seed 0."""

    kind: str
    rate: float | None
    seed: int


def rate_pct(rate) -> int:
    """A rate (fraction in (0, 1) or percent in (1, 100)) as a whole percent 1..99.

    Raises ValueError for anything else, including a rate that is not a whole percent
    (ids cannot tell 0.5 from 0.501 apart).
    """
    try:
        r = float(rate)
    except (TypeError, ValueError):
        raise ValueError(f"rate must be a number, got {rate!r}") from None
    pct = r * 100.0 if r < 1 else r  # 1 itself is ambiguous (100 % or 1 %): refused
    ipct = int(round(pct))
    if not (1 <= ipct <= 99) or not (0 < r < 100) or r == 1:
        raise ValueError(f"rate must be in (0, 1) or a percent in (1, 100), got {rate!r}")
    if abs(pct - ipct) > 1e-6:
        raise ValueError(f"rate {rate!r} is not a whole percent, which scenario ids need")
    return ipct


def check_seed(seed) -> int:
    """``seed`` as an int; ValueError unless it is a non-negative integer."""
    try:
        s = int(seed)
    except (TypeError, ValueError):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}") from None
    if s < 0 or s != seed:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return s


def format_id(kind: str, rate=None, seed=None) -> str:
    """``format_id("dropout", 0.5, 1) == "dropout50_s1"``; ``format_id("none") == "none"``."""
    if kind not in KINDS:
        raise ValueError(f"unknown scenario kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kind in UNSEEDED:
        return kind
    seed = check_seed(0 if seed is None else seed)
    if kind in SEEDED:
        return f"{kind}_s{seed}"
    return f"{kind}{rate_pct(rate):02d}_s{seed}"


def is_id(sid) -> bool:
    return isinstance(sid, str) and _ID_RE.match(sid) is not None


def parse_id(sid) -> ScenarioId:
    """Inverse of :func:`format_id` (raises ValueError naming the grammar)."""
    m = _PARTS.match(sid) if is_id(sid) else None
    if m is None:
        raise ValueError(f"scenario id {sid!r} is not one of dropoutNN_sS, maskNN_sS, "
                         "mcv_sS, sampling_sS, split, none (NN a percent 1-99, S a seed)")
    if m.group("none"):
        return ScenarioId(m.group("none"), None, 0)
    if m.group("mseed") is not None:
        return ScenarioId(m.group("skind"), None, int(m.group("mseed")))
    return ScenarioId(m.group("kind"), int(m.group("pct")) / 100.0, int(m.group("seed")))


def ids_from_spec(spec: dict | None) -> list[str]:
    """Every id of one ``scenarios:`` config block, in a stable order (none, sampling,
    dropout, mask, mcv, split; rates then seeds as listed), duplicates removed."""
    spec = spec or {}
    ids: list[str] = []
    if spec.get("none"):
        ids.append("none")
    for seed in (spec.get("sampling") or {}).get("seeds") or []:
        ids.append(format_id("sampling", None, seed))
    for kind in RATED:
        block = spec.get(kind) or {}
        for rate in block.get("rates") or []:
            for seed in block.get("seeds") or [1]:
                ids.append(format_id(kind, rate, seed))
    for seed in (spec.get("mcv") or {}).get("seeds") or []:
        ids.append(format_id("mcv", None, seed))
    if spec.get("split"):
        ids.append("split")
    return list(dict.fromkeys(ids))


def group_of(sid: str) -> str:
    """The id without its seed: ``dropout50_s2`` -> ``dropout50``; ``none`` -> ``none``."""
    return _SEED_SUFFIX.sub("", str(sid))


def seed_of(sid: str) -> int:
    return parse_id(sid).seed


def label_of(group: str) -> str:
    """Readable label of a group or id: ``dropout50`` -> ``dropout 50 %``, ``mcv`` ->
    ``MCV``, ``mask10`` -> ``mask 10 %``, ``sampling`` -> ``no dropout``, ``split`` ->
    ``MCV, given split``, ``none`` -> ``as given``."""
    g = group_of(group)
    m = re.fullmatch(r"(dropout|mask)(\d+)", g)
    if m:
        return f"{m.group(1)} {int(m.group(2))} %"
    return {"mcv": "MCV", "sampling": "no dropout", "split": "MCV, given split",
            "none": "as given"}.get(g, g)
