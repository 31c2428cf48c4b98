"""Multi-label decision rules: per-class threshold search, application, fitting split."""
import numpy as np
import pytest
import sklearn.metrics as skm

from lcl_jax import thresholds


def _scores(seed, n, num_classes):
  rng = np.random.default_rng(seed)
  truth = (rng.uniform(size=(n, num_classes)) < 0.25).astype(np.int32)
  probs = np.clip(0.35 * truth + rng.uniform(size=truth.shape) * 0.7, 0, 1)
  truth[:, 0] = 0  # a class never present: nothing to fit
  probs[:, 1] = 0.001  # a class never above any candidate
  return truth, probs


@pytest.mark.parametrize("seed,n,num_classes", [(0, 60, 4), (1, 200, 6)])
def test_per_class_search_equals_brute_force_scan(seed, n, num_classes):
  truth, probs = _scores(seed, n, num_classes)
  grid = thresholds.DEFAULT_CANDIDATES
  fitted = thresholds.fit_per_class_thresholds(truth, probs, candidates=grid, default=0.5)
  assert fitted.shape == (num_classes,)
  for c in range(num_classes):
    scores = [skm.f1_score(truth[:, c], probs[:, c] >= t, zero_division=0) for t in grid]
    best = int(np.argmax(scores))  # first (smallest) threshold attaining the maximum
    expected = grid[best] if scores[best] > 0 else 0.5
    assert fitted[c] == expected, c
    achieved = skm.f1_score(truth[:, c], probs[:, c] >= fitted[c], zero_division=0)
    assert achieved == pytest.approx(max(scores), abs=1e-12)
  assert fitted[0] == 0.5 and fitted[1] == 0.5


def test_thresholds_are_applied_per_column():
  probs = np.array([[0.2, 0.6, 0.9], [0.5, 0.4, 0.7]])
  np.testing.assert_array_equal(thresholds.apply_thresholds(probs, [0.1, 0.5, 0.8]),
                                [[1, 1, 1], [1, 0, 0]])
  np.testing.assert_array_equal(thresholds.apply_thresholds(probs, 0.5), [[0, 1, 1], [1, 0, 1]])
  with pytest.raises(ValueError, match=r"`thresholds`.*\[3\]"):
    thresholds.apply_thresholds(probs, [0.5, 0.5])


class _OnlyFittingSplit:
  """A score source that fails the test if any split but the fitting one is read."""

  def __init__(self, allowed, truth, probs):
    self.allowed, self.truth, self.probs, self.read = allowed, truth, probs, []

  def split_scores(self, name):
    if name != self.allowed:
      raise AssertionError(f"split {name!r} read while fitting on {self.allowed!r}")
    self.read.append(name)
    return self.truth, self.probs


@pytest.mark.parametrize("fit_split", ["validation", "train"])
def test_fit_reads_only_the_fitting_split(fit_split):
  truth, probs = _scores(2, 80, 6)
  source = _OnlyFittingSplit(fit_split, truth, probs)
  fitted = thresholds.fit_thresholds(source, fit_split=fit_split)
  assert source.read == [fit_split]
  np.testing.assert_array_equal(fitted, thresholds.fit_per_class_thresholds(truth, probs))
  with pytest.raises(ValueError, match="never on test"):
    thresholds.fit_thresholds(source, fit_split="test")


@pytest.mark.parametrize("call,pattern", [
    (lambda: thresholds.fit_per_class_thresholds([[0, 1]], [[0.1, 0.2, 0.3]]), r"same shape"),
    (lambda: thresholds.fit_per_class_thresholds([[0, 2]], [[0.1, 0.2]]), r"0/1"),
    (lambda: thresholds.fit_per_class_thresholds([[0, 1]], [[0.1, 0.2]], candidates=[0.5, 0.2]),
     r"increasing"),
])
def test_bad_inputs(call, pattern):
  with pytest.raises(ValueError, match=pattern):
    call()
