"""lcl_jax.studies.stats against hand transcriptions of the t-test formulas."""
import math
import statistics

import numpy as np
import pytest
from scipy import special

from lcl_jax.studies import stats


def _two_sided_p(t: float, df: float) -> float:
  # P(|T| > |t|) for Student's t with df degrees of freedom = I_{df/(df+t^2)}(df/2, 1/2).
  return float(special.betainc(df / 2.0, 0.5, df / (df + t * t)))


def _welch_by_hand(a, b):
  na, nb = len(a), len(b)
  va, vb = statistics.variance(a), statistics.variance(b)
  se2 = va / na + vb / nb
  t = (statistics.fmean(a) - statistics.fmean(b)) / math.sqrt(se2)
  df = se2 ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
  return t, df, _two_sided_p(t, df)


def test_summarize_matches_statistics_module():
  values = [58.1, 60.3, 59.2, 57.7, 61.0]
  s = stats.summarize(values)
  assert s.n == 5
  assert s.mean == pytest.approx(statistics.fmean(values), abs=1e-12)
  assert s.sd == pytest.approx(statistics.stdev(values), abs=1e-12)  # ddof = 1


def test_summarize_small_samples():
  one = stats.summarize([0.5])
  assert one.n == 1 and one.mean == 0.5 and math.isnan(one.sd)
  none = stats.summarize([])
  assert none.n == 0 and math.isnan(none.mean)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_welch_matches_hand_formula(seed):
  rng = np.random.default_rng(seed)
  a = list(rng.normal(60.0, 0.8, size=5))
  b = list(rng.normal(58.5, 1.7, size=7))  # unequal n and variances
  t, df, p = _welch_by_hand(a, b)
  result = stats.welch_ttest(a, b)
  assert result.kind == "welch" and result.defined
  assert result.statistic == pytest.approx(t, rel=1e-10)
  assert result.df == pytest.approx(df, rel=1e-10)
  assert result.pvalue == pytest.approx(p, rel=1e-8)
  assert result.mean_difference == pytest.approx(statistics.fmean(a) - statistics.fmean(b))
  assert (result.n_a, result.n_b) == (5, 7)


def test_welch_sign_follows_first_argument():
  better, worse = [61.0, 62.0, 60.5], [58.0, 59.5, 58.2]
  assert stats.welch_ttest(better, worse).statistic > 0
  assert stats.welch_ttest(worse, better).statistic < 0


def test_paired_uses_common_seeds_and_matches_hand_formula():
  a = {0: 60.0, 1: 61.5, 2: 59.0, 3: 62.0, 7: 99.0}
  b = {0: 58.0, 1: 60.0, 2: 58.5, 3: 59.0, 9: 1.0}
  d = [a[s] - b[s] for s in (0, 1, 2, 3)]
  t = statistics.fmean(d) / (statistics.stdev(d) / math.sqrt(len(d)))
  result = stats.paired_ttest(a, b)
  assert result.kind == "paired" and result.n_a == 4
  assert result.statistic == pytest.approx(t, rel=1e-10)
  assert result.df == pytest.approx(3)
  assert result.pvalue == pytest.approx(_two_sided_p(t, 3), rel=1e-8)
  assert result.mean_difference == pytest.approx(statistics.fmean(d))


def test_undefined_tests_are_nan_with_a_reason():
  r = stats.welch_ttest([60.0], [58.0, 59.0])
  assert not r.defined and math.isnan(r.pvalue) and "2 values" in r.note
  r = stats.welch_ttest([60.0, 60.0], [58.0, 58.0])
  assert not r.defined and "zero variance" in r.note and r.mean_difference == 2.0
  r = stats.paired_ttest({0: 1.0, 1: 2.0}, {1: 1.0, 2: 0.0})
  assert not r.defined and r.n_a == 1
  r = stats.paired_ttest({0: 3.0, 1: 4.0}, {0: 1.0, 1: 2.0})  # constant difference
  assert not r.defined and "zero variance" in r.note
