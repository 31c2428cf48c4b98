"""Summary statistics over seeds and the paper's significance tests.

The paper reports mean (sd) over seeds and "t-tests between LCL and SCL/CE". It does
not say which t-test. We report two, both two-sided, computed with `scipy.stats`:

* Welch's unequal-variance two-sample t-test (`welch_ttest`) -- the PRIMARY test,
  used for the significance marks. The runs of two objectives are independent
  samples: a shared seed fixes the data order and augmentation, but the networks,
  their initialisation (LCL has a second, weighting network) and every later step
  differ, so there is no reason for the pairs to be correlated, and a paired test
  would assume a correlation it cannot check with 5-10 seeds. Welch rather than
  Student's pooled test because nothing makes the objectives' seed-to-seed
  variances equal (contrastive objectives are visibly less stable on small data).
* The paired t-test over the seeds both objectives ran (`paired_ttest`), as a
  secondary column: the right test when seeds do share their randomness, and what a
  reader who assumes it would compute.

`sd` is the sample standard deviation (ddof=1), the usual "mean (sd)" over seeds.
With fewer than two values per group a test is undefined and reported as NaN.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Mapping, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Summary:
  """Mean and sample standard deviation (ddof=1) of `n` values (NaN sd if n < 2)."""
  n: int
  mean: float
  sd: float

  def as_dict(self) -> dict[str, float | int]:
    return {"n": self.n, "mean": self.mean, "sd": self.sd}


def summarize(values: Sequence[float]) -> Summary:
  """Mean and sample sd of `values` (NaN mean for no values)."""
  x = np.asarray(values, dtype=np.float64).reshape(-1)
  if x.size == 0:
    return Summary(0, math.nan, math.nan)
  sd = float(x.std(ddof=1)) if x.size > 1 else math.nan
  return Summary(int(x.size), float(x.mean()), sd)


@dataclasses.dataclass(frozen=True)
class TTest:
  """A two-sided t-test of mean(a) - mean(b).

  Attributes:
    kind: "welch" (independent samples, unequal variances) or "paired" (by seed).
    statistic: t; positive when `a` has the larger mean. NaN when undefined.
    pvalue: two-sided p. NaN when undefined.
    df: degrees of freedom (Welch-Satterthwaite for "welch", n - 1 for "paired").
    n_a, n_b: sample sizes used (for "paired": both the number of common seeds).
    mean_difference: mean(a) - mean(b) (for "paired": the mean of the differences,
      the same number over the common seeds).
    note: why the test is undefined, if it is.
  """
  kind: str
  statistic: float
  pvalue: float
  df: float
  n_a: int
  n_b: int
  mean_difference: float
  note: str = ""

  @property
  def defined(self) -> bool:
    return math.isfinite(self.statistic) and math.isfinite(self.pvalue)

  def as_dict(self) -> dict[str, float | int | str]:
    return dataclasses.asdict(self)


def _undefined(kind: str, n_a: int, n_b: int, diff: float, note: str) -> TTest:
  return TTest(kind, math.nan, math.nan, math.nan, n_a, n_b, diff, note)


def welch_ttest(a: Sequence[float], b: Sequence[float]) -> TTest:
  """Welch's two-sided t-test of independent samples `a` and `b`."""
  from scipy import stats  # pylint: disable=g-import-not-at-top

  x = np.asarray(a, dtype=np.float64).reshape(-1)
  y = np.asarray(b, dtype=np.float64).reshape(-1)
  diff = float(x.mean() - y.mean()) if x.size and y.size else math.nan
  if x.size < 2 or y.size < 2:
    return _undefined("welch", x.size, y.size, diff, "needs >= 2 values per group")
  if x.var(ddof=1) == 0 and y.var(ddof=1) == 0:
    return _undefined("welch", x.size, y.size, diff, "both groups have zero variance")
  with warnings.catch_warnings():
    # Near-identical smoke values: scipy warns of precision loss; the t and p it returns
    # are still what we report (n/a cases are caught above).
    warnings.simplefilter("ignore", RuntimeWarning)
    result = stats.ttest_ind(x, y, equal_var=False)
  return TTest("welch", float(result.statistic), float(result.pvalue), float(result.df),
               int(x.size), int(y.size), diff)


def paired_ttest(a: Mapping[int, float], b: Mapping[int, float]) -> TTest:
  """Paired two-sided t-test over the seeds present in both `a` and `b` (seed -> value)."""
  from scipy import stats  # pylint: disable=g-import-not-at-top

  seeds = sorted(set(a) & set(b))
  x = np.asarray([a[s] for s in seeds], dtype=np.float64)
  y = np.asarray([b[s] for s in seeds], dtype=np.float64)
  n = len(seeds)
  diff = float((x - y).mean()) if n else math.nan
  if n < 2:
    return _undefined("paired", n, n, diff, "needs >= 2 common seeds")
  if np.all(x - y == (x - y)[0]):
    return _undefined("paired", n, n, diff, "the differences have zero variance")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    result = stats.ttest_rel(x, y)
  return TTest("paired", float(result.statistic), float(result.pvalue), float(result.df),
               n, n, diff)
