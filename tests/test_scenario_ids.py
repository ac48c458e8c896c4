"""The scenario-id grammar (scziva_bench.catalog.scenarios), used by the Snakefile, the
library and the figures alike."""
import re

import pytest

from scziva_bench.catalog import scenarios as sid


@pytest.mark.parametrize("kind, rate, seed, text", [
    ("dropout", 0.5, 1, "dropout50_s1"),
    ("dropout", 0.05, 2, "dropout05_s2"),
    ("dropout", 80, 3, "dropout80_s3"),
    ("mask", 0.1, 1, "mask10_s1"),
    ("mcv", None, 4, "mcv_s4"),
    ("sampling", None, 2, "sampling_s2"),
    ("none", None, None, "none"),
])
def test_format_and_parse_are_inverse(kind, rate, seed, text):
    assert sid.format_id(kind, rate, seed) == text
    parsed = sid.parse_id(text)
    assert parsed.kind == kind
    assert sid.format_id(*parsed) == text
    assert re.fullmatch(sid.WILDCARD, text)


@pytest.mark.parametrize("bad", ["dropout0_s1", "dropout00_s1", "dropout100_s1", "mask5",
                                 "mcv", "dropout50_s", "none_s1", "sampling",
                                 "sampling50_s1", "Dropout50_s1", "", "x/.."])
def test_wildcard_and_parser_agree_on_bad_ids(bad):
    assert not re.fullmatch(sid.WILDCARD, bad)
    with pytest.raises(ValueError, match="not one of"):
        sid.parse_id(bad)


@pytest.mark.parametrize("rate", [0, 1.0, 100, -0.1, 0.125, "x", None])
def test_bad_rates(rate):
    with pytest.raises(ValueError):
        sid.format_id("dropout", rate, 1)


def test_ids_from_spec_order_and_duplicates():
    spec = {"none": True, "dropout": {"rates": [0.2, 0.5, 0.5], "seeds": [1, 2]},
            "mask": {"rates": [0.1]}, "mcv": {"seeds": [3]}, "sampling": {"seeds": [2, 2]}}
    assert sid.ids_from_spec(spec) == ["none", "sampling_s2", "dropout20_s1", "dropout20_s2", "dropout50_s1",
                                       "dropout50_s2", "mask10_s1", "mcv_s3"]
    assert sid.ids_from_spec(None) == []


def test_groups_seeds_labels():
    assert sid.group_of("dropout50_s12") == "dropout50"
    assert sid.group_of("none") == "none"
    assert sid.seed_of("mcv_s7") == 7
    assert sid.label_of("dropout50_s1") == "dropout 50 %"
    assert sid.label_of("mask10") == "mask 10 %"
    assert sid.label_of("mcv") == "MCV"
    assert sid.label_of("sampling_s3") == "no dropout" and sid.seed_of("sampling_s3") == 3
