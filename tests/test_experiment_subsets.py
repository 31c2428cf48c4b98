"""Table 3's hard-subset selection against a brute-force itertools search."""
import itertools
import math

import numpy as np
import pytest

from lcl_jax.studies import table3_class_subsets as subsets


def _brute_force(confusion, num_subsets, size):
  """The paper's procedure written as plain loops (first maximum wins ties)."""
  c = confusion.shape[0]
  excluded: set[int] = set()
  chosen = []
  for _ in range(num_subsets):
    best, best_score = None, -math.inf
    for combo in itertools.combinations(range(c), size):
      if excluded.intersection(combo):
        continue
      score = 0.0
      for i in combo:
        for j in combo:
          if i != j:
            score += float(confusion[i][j])
      if score > best_score:
        best, best_score = combo, score
    chosen.append((best, best_score))
    excluded.update(best)
  return chosen


def test_all_combinations_is_every_4_subset_of_32_in_order():
  combos = subsets.all_combinations(32, 4)
  assert combos.shape == (35960, 4)  # the paper's count
  assert np.all(np.diff(combos, axis=1) > 0)  # each row strictly increasing
  assert len({tuple(r) for r in combos.tolist()}) == 35960
  assert combos[0].tolist() == [0, 1, 2, 3] and combos[-1].tolist() == [28, 29, 30, 31]
  assert combos.tolist()[:5] == [list(c) for c in itertools.islice(
      itertools.combinations(range(32), 4), 5)]


def test_off_diagonal_scores_match_loops():
  rng = np.random.default_rng(0)
  m = rng.integers(0, 20, size=(9, 9))
  combos = subsets.all_combinations(9, 3)
  expected = [sum(m[i, j] for i in c for j in c if i != j) for c in combos.tolist()]
  np.testing.assert_array_equal(subsets.off_diagonal_scores(m, combos), expected)


@pytest.mark.parametrize("seed,high", [(0, 50), (1, 50), (2, 3), (3, 2)])  # small high: ties
def test_selection_matches_brute_force(seed, high):
  rng = np.random.default_rng(seed)
  m = rng.integers(0, high, size=(11, 11))
  found = subsets.select_hard_subsets(m, num_subsets=3, size=3)
  expected = _brute_force(m, 3, 3)
  assert [s.classes for s in found] == [c for c, _ in expected]
  assert [s.score for s in found] == [s for _, s in expected]
  assert [s.names for s in found] == [tuple(map(str, c)) for c, _ in expected]


def test_selection_finds_planted_confusable_groups_on_32_classes():
  rng = np.random.default_rng(7)
  names = [f"class{i}" for i in range(32)]
  m = rng.integers(0, 3, size=(32, 32)).astype(float)
  np.fill_diagonal(m, 60)
  planted = [(3, 9, 17, 30), (0, 1, 2, 31), (5, 6, 20, 21), (10, 11, 12, 13)]
  strength = [40, 30, 20, 12]  # confusion within each group, strongest first
  for group, s in zip(planted, strength):
    for i in group:
      for j in group:
        if i != j:
          m[i, j] += s
  found = subsets.select_hard_subsets(m, num_subsets=4, size=4, label_names=names)
  assert [s.classes for s in found] == planted
  assert found[0].names == ("class3", "class9", "class17", "class30")
  assert subsets.subset_score(m, found[0].names, names) == found[0].score
  # Selected subsets are disjoint.
  assert len({c for s in found for c in s.classes}) == 16


def test_selection_errors():
  with pytest.raises(ValueError, match="square"):
    subsets.select_hard_subsets(np.zeros((4, 5)))
  with pytest.raises(ValueError, match="need >= 16"):
    subsets.select_hard_subsets(np.zeros((10, 10)), num_subsets=4, size=4)
  with pytest.raises(ValueError, match="label names"):
    subsets.select_hard_subsets(np.zeros((8, 8)), num_subsets=1, label_names=["a"])
  with pytest.raises(ValueError, match="not among the labels"):
    subsets.subset_score(np.zeros((3, 3)), ["x"], ["a", "b", "c"])
