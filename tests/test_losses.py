"""Tests of lcl_jax.losses against slow explicit-loop float64 transcriptions.

The references below loop over anchors i, denominator terms k and positives p in plain
Python/NumPy float64, written from the equations (and, for LCL, from the authors'
released PyTorch code), independently of the vectorised implementation.
"""
import doctest
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import lcl_jax
from benchmarks import torch_reference
from lcl_jax import losses

# --------------------------------------------------------------------------------------
# Explicit-loop references (float64).
# --------------------------------------------------------------------------------------


def _unit_rows(embeddings):
  x = np.asarray(embeddings, np.float64)
  out = np.zeros_like(x)
  for i in range(x.shape[0]):
    out[i] = x[i] / max(math.sqrt(float(np.dot(x[i], x[i]))), 1e-12)
  return out


def _softmax_row(row):
  row = np.asarray(row, np.float64)
  e = np.exp(row - row.max())
  return e / e.sum()


def _valid_rows(batch, valid):
  return [i for i in range(batch) if valid is None or bool(valid[i])]


def _reference_contrastive(embeddings, tau, valid, is_positive, pair_weight, anchor_weight):
  """-1/|P_i| sum_p a_i log(exp(s_ip) / sum_{k != i} w_ik exp(s_ik)), mean over anchors."""
  h = _unit_rows(embeddings)
  rows = _valid_rows(h.shape[0], valid)
  per_anchor = []
  for i in rows:
    positives = [p for p in rows if p != i and is_positive(i, p)]
    if not positives:
      continue
    denominator = 0.0
    for k in rows:
      if k != i:
        denominator += pair_weight(i, k) * math.exp(float(np.dot(h[i], h[k])) / tau)
    total = 0.0
    for p in positives:
      total += anchor_weight(i) * math.log(math.exp(float(np.dot(h[i], h[p])) / tau) / denominator)
    per_anchor.append(-total / len(positives))
  return float(np.mean(per_anchor)) if per_anchor else 0.0


def ref_supcon(embeddings, labels, tau, valid=None):
  labels = np.asarray(labels)
  return _reference_contrastive(
      embeddings, tau, valid, lambda i, p: labels[i] == labels[p], lambda i, k: 1.0, lambda i: 1.0
  )


def ref_lcl(embeddings, labels, weight_logits, tau, valid=None):
  labels = np.asarray(labels)
  w = np.stack([_softmax_row(r) for r in np.asarray(weight_logits)])
  return _reference_contrastive(
      embeddings, tau, valid,
      lambda i, p: labels[i] == labels[p],
      lambda i, k: w[i, labels[k]],
      lambda i: w[i, labels[i]],
  )


def ref_multilabel_supcon(embeddings, label_sets, tau, valid=None):
  sets = [set(np.flatnonzero(r)) for r in np.asarray(label_sets)]
  return _reference_contrastive(
      embeddings, tau, valid, lambda i, p: bool(sets[i] & sets[p]), lambda i, k: 1.0, lambda i: 1.0
  )


def ref_multilabel_lcl(embeddings, label_sets, weight_logits, tau, valid=None):
  sets = [set(np.flatnonzero(r)) for r in np.asarray(label_sets)]
  w = np.stack([_softmax_row(r) for r in np.asarray(weight_logits)])
  return _reference_contrastive(
      embeddings, tau, valid,
      lambda i, p: bool(sets[i] & sets[p]),
      lambda i, k: sum(w[i, c] for c in sets[k]),
      lambda i: sum(w[i, c] for c in sets[i]),
  )


def ref_softmax_ce(logits, labels, valid=None):
  rows = _valid_rows(len(labels), valid)
  if not rows:
    return 0.0
  return float(np.mean([-math.log(_softmax_row(logits[i])[labels[i]]) for i in rows]))


def ref_sigmoid_bce(logits, label_sets, valid=None):
  rows = _valid_rows(len(label_sets), valid)
  terms = []
  for i in rows:
    for c in range(np.shape(logits)[1]):
      prob = 1.0 / (1.0 + math.exp(-float(logits[i][c])))
      terms.append(-math.log(prob) if label_sets[i][c] else -math.log(1.0 - prob))
  return float(np.mean(terms)) if terms else 0.0


# --------------------------------------------------------------------------------------
# Random problems.
# --------------------------------------------------------------------------------------


def _problem(seed, batch, num_classes, dim=6, *, ties=False, padded=False):
  rng = np.random.default_rng(seed)
  embeddings = rng.normal(size=(batch, dim)).astype(np.float32) * rng.uniform(0.5, 3.0)
  labels = rng.integers(0, num_classes, size=batch).astype(np.int32)
  weight_logits = (2.0 * rng.normal(size=(batch, num_classes))).astype(np.float32)
  label_sets = (rng.uniform(size=(batch, num_classes)) < 0.35).astype(np.int32)
  label_sets[np.arange(batch), labels] = 1  # every row has at least one label
  if ties and batch >= 3:
    embeddings[1] = embeddings[0]  # identical rows (tied similarities)
    embeddings[2] = 4.0 * embeddings[0]  # same direction, different norm
    labels[1] = labels[0]
  valid = np.ones(batch, bool)
  if padded:
    valid = rng.uniform(size=batch) < 0.7
    valid[:2] = True
    embeddings[~valid] = rng.normal(size=(int((~valid).sum()), dim)) * 50  # garbage
    labels[~valid] = -1  # garbage label on padding
    label_sets[~valid] = 1
  return embeddings, labels, weight_logits, label_sets, valid


def _all_losses_jnp(embeddings, labels, weight_logits, label_sets, valid, tau=0.3):
  """Every loss of the module on one problem, stacked: [6]."""
  return jnp.stack([
      losses.supcon_loss(embeddings, labels, temperature=tau, valid=valid),
      losses.lcl_loss(embeddings, labels, weight_logits, temperature=tau, valid=valid),
      losses.multilabel_supcon_loss(embeddings, label_sets, temperature=tau, valid=valid),
      losses.multilabel_lcl_loss(embeddings, label_sets, weight_logits, temperature=tau, valid=valid),
      losses.softmax_cross_entropy(weight_logits, labels, valid=valid),
      losses.sigmoid_binary_cross_entropy(weight_logits, label_sets, valid=valid),
  ])


_all_losses_jit = jax.jit(_all_losses_jnp)


@jax.jit
def _weighted_sum_grads(embeddings, labels, weight_logits, label_sets, valid, tau, coefficients):
  """Gradient of sum_n coefficients_n * loss_n wrt (embeddings, weight_logits)."""
  def weighted_sum(e, w):
    return jnp.dot(coefficients, _all_losses_jnp(e, labels, w, label_sets, valid, tau=tau))
  return jax.grad(weighted_sum, argnums=(0, 1))(embeddings, weight_logits)


def _grads(*problem, tau=0.3, coefficients=(1.0, 1.0, 1.0, 1.0, 1.0, 1.0)):
  grads = _weighted_sum_grads(*problem, tau, jnp.asarray(coefficients, jnp.float32))
  return [np.asarray(g) for g in grads]


def _all_losses(*problem, tau=0.3):
  return np.asarray(_all_losses_jit(*problem, tau=tau), np.float64)


CASES = [
    # (seed, B, C, ties, padded)
    (0, 2, 2, False, False),
    (1, 5, 3, False, False),
    (2, 8, 2, True, False),
    (3, 13, 5, False, True),
    (4, 16, 7, True, True),
    (5, 9, 1, False, False),  # single-class batch
]
TEMPERATURES = (0.07, 0.3, 1.0, 10.0)


def _close(actual, expected, rtol=2e-5):
  actual = float(actual)
  assert np.isfinite(actual)
  assert abs(actual - expected) <= rtol * (1.0 + abs(expected)), (actual, expected)


# --------------------------------------------------------------------------------------
# Each loss against its transcription.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed,batch,num_classes,ties,padded", CASES)
def test_each_loss_matches_its_loop_reference(seed, batch, num_classes, ties, padded):
  embeddings, labels, weight_logits, label_sets, valid = _problem(
      seed, batch, num_classes, ties=ties, padded=padded
  )
  mask = valid if padded else None
  for tau in TEMPERATURES:
    value = _all_losses(embeddings, labels, weight_logits, label_sets, valid, tau=tau)
    _close(value[0], ref_supcon(embeddings, labels, tau, mask))
    _close(value[1], ref_lcl(embeddings, labels, weight_logits, tau, mask))
    _close(value[2], ref_multilabel_supcon(embeddings, label_sets, tau, mask))
    _close(value[3], ref_multilabel_lcl(embeddings, label_sets, weight_logits, tau, mask))
    _close(value[4], ref_softmax_ce(weight_logits, labels, mask))
    _close(value[5], ref_sigmoid_bce(weight_logits, label_sets, mask))


def test_multilabel_with_empty_label_set_rows():
  embeddings, labels, weight_logits, label_sets, valid = _problem(7, 14, 4, padded=True)
  empty = np.flatnonzero(valid)[[1, 4]]
  label_sets[empty] = 0  # no label: no positive, zero LCL weight in every denominator
  for tau in (0.07, 1.0):
    value = _all_losses(embeddings, labels, weight_logits, label_sets, valid, tau=tau)
    _close(value[2], ref_multilabel_supcon(embeddings, label_sets, tau, valid))
    _close(value[3], ref_multilabel_lcl(embeddings, label_sets, weight_logits, tau, valid))


def test_lcl_matches_torch_transcription_of_the_release():
  """The authors' released `LCL.forward` (loss.py), transcribed in PyTorch with its loop."""
  import torch  # the `test` extra pins it

  embeddings, labels, weight_logits, label_sets, valid = _problem(11, 14, 4)
  labels[7:] = labels[:7]  # every anchor has a positive (the release needs one)
  tau = 0.3
  features = torch.nn.functional.normalize(torch.tensor(embeddings, dtype=torch.float64), dim=1)
  args = (features, torch.tensor(labels), torch.tensor(weight_logits, dtype=torch.float64), tau)
  release = torch_reference.release_lcl_loss(*args, loops=True).item()
  assert torch_reference.release_lcl_loss(*args).item() == pytest.approx(release, rel=1e-12)
  _close(_all_losses(embeddings, labels, weight_logits, label_sets, valid, tau=tau)[1], release)


def test_supcon_matches_the_torch_reference_of_the_scl_loop():
  """`torch_reference.supcon_loss` (the SCL term of the parity benchmark's PyTorch loop)."""
  import torch

  embeddings, labels, weight_logits, label_sets, valid = _problem(11, 14, 4)
  labels[7:] = labels[:7]
  features = torch.nn.functional.normalize(torch.tensor(embeddings, dtype=torch.float64), dim=1)
  theirs = torch_reference.supcon_loss(features, torch.tensor(labels), 0.3).item()
  _close(_all_losses(embeddings, labels, weight_logits, label_sets, valid, tau=0.3)[0], theirs)


@pytest.mark.parametrize("tau", [0.05, 100.0])
def test_extreme_temperatures_and_weight_logits_are_stable(tau):
  embeddings, labels, weight_logits, label_sets, valid = _problem(12, 14, 4, padded=True)
  weight_logits = weight_logits * 60.0  # softmax weights down to ~1e-200 in float64
  problem = (embeddings, labels, weight_logits, label_sets, valid)
  value = _all_losses(*problem, tau=tau)
  _close(value[0], ref_supcon(embeddings, labels, tau, valid))
  _close(value[1], ref_lcl(embeddings, labels, weight_logits, tau, valid))
  _close(value[2], ref_multilabel_supcon(embeddings, label_sets, tau, valid))
  _close(value[3], ref_multilabel_lcl(embeddings, label_sets, weight_logits, tau, valid), rtol=1e-4)
  assert all(np.isfinite(g).all() for g in _grads(*problem, tau=tau))


def test_classification_terms_match_reference_and_optax():
  rng = np.random.default_rng(13)
  logits = (3 * rng.normal(size=(9, 5))).astype(np.float32)
  labels = rng.integers(0, 5, size=9).astype(np.int32)
  label_sets = (rng.uniform(size=(9, 5)) < 0.4).astype(np.int32)
  valid = np.array([1, 1, 0, 1, 1, 1, 0, 1, 1], bool)
  softmax_cross_entropy = jax.jit(losses.softmax_cross_entropy)
  sigmoid_binary_cross_entropy = jax.jit(losses.sigmoid_binary_cross_entropy)
  _close(softmax_cross_entropy(logits, labels), ref_softmax_ce(logits, labels))
  _close(softmax_cross_entropy(logits, labels, valid=valid), ref_softmax_ce(logits, labels, valid))
  optax_ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  _close(softmax_cross_entropy(logits, labels), float(jnp.mean(optax_ce)))
  _close(sigmoid_binary_cross_entropy(logits, label_sets), ref_sigmoid_bce(logits, label_sets))
  _close(
      sigmoid_binary_cross_entropy(logits, label_sets, valid=valid),
      ref_sigmoid_bce(logits, label_sets, valid),
  )
  optax_bce = optax.sigmoid_binary_cross_entropy(logits, label_sets.astype(np.float32))
  _close(sigmoid_binary_cross_entropy(logits, label_sets.astype(bool)), float(jnp.mean(optax_bce)))
  # No valid row: 0, not NaN.
  none = np.zeros(9, bool)
  assert float(softmax_cross_entropy(logits, labels, valid=none)) == 0.0
  assert float(sigmoid_binary_cross_entropy(logits, label_sets, valid=none)) == 0.0


def test_out_of_range_label_on_valid_row_gives_nan():
  embeddings, labels, weight_logits, label_sets, valid = _problem(14, 14, 4, padded=True)
  assert (labels[~valid] == -1).all() and (~valid).any()  # garbage on padding is ignored
  assert np.isfinite(_all_losses(embeddings, labels, weight_logits, label_sets, valid)).all()
  labels[np.flatnonzero(valid)[0]] = 4  # C = 4
  value = _all_losses(embeddings, labels, weight_logits, label_sets, valid)
  assert np.isnan(value[1]) and np.isnan(value[4])  # lcl_loss, softmax_cross_entropy
  assert np.isfinite(value[[0, 2, 3, 5]]).all()  # no class-index lookup in these


# --------------------------------------------------------------------------------------
# Anchors without positives.
# --------------------------------------------------------------------------------------


def test_anchor_without_positive_is_left_out_of_the_mean():
  embeddings, _, weight_logits, label_sets, valid = _problem(15, 14, 4)
  labels = np.array([0, 1] * 6 + [2, 3], np.int32)  # rows 12 and 13 have no positive
  label_sets = np.eye(4, dtype=np.int32)[labels]
  # Their rows still sit in the other anchors' denominators; the reference skips them
  # as anchors only, and averages over the 12 anchors that have a positive.
  value = _all_losses(embeddings, labels, weight_logits, label_sets, valid)
  for n, reference in enumerate([
      ref_supcon(embeddings, labels, 0.3),
      ref_lcl(embeddings, labels, weight_logits, 0.3),
      ref_multilabel_supcon(embeddings, label_sets, 0.3),
      ref_multilabel_lcl(embeddings, label_sets, weight_logits, 0.3),
  ]):
    _close(value[n], reference)
    assert abs(value[n] - reference * 12 / 14) > 1e-4  # not a mean over all 14 rows


def test_no_positive_anywhere_gives_zero_loss_and_zero_gradient():
  embeddings, _, weight_logits, _, _ = _problem(16, 14, 4)
  valid = np.zeros(14, bool)
  valid[[1, 4, 8, 13]] = True
  labels = np.zeros(14, np.int32)
  labels[valid] = np.arange(4)  # all distinct on valid rows ...
  label_sets = np.eye(4, dtype=np.int32)[labels]  # ... and disjoint label sets
  value = _all_losses(embeddings, labels, weight_logits, label_sets, valid, tau=0.1)
  np.testing.assert_array_equal(value[:4], 0.0)
  for g in _grads(embeddings, labels, weight_logits, label_sets, valid, tau=0.1,
                  coefficients=(1.0, 1.0, 1.0, 1.0, 0.0, 0.0)):
    np.testing.assert_array_equal(g, 0.0)
  # A single valid row (the rest padding) is the same situation.
  one = np.zeros(14, bool)
  one[3] = True
  value = _all_losses(embeddings, labels * 0, weight_logits, label_sets, one, tau=0.1)
  np.testing.assert_array_equal(value[:4], 0.0)


# --------------------------------------------------------------------------------------
# Identities.
# --------------------------------------------------------------------------------------


def test_uniform_weights_identity():
  # Algebra: with w = 1/C, log D_i = LSE_k(s_ik) - log C, so
  # L_i = -(1/C) mean_p (s_ip - LSE_k s_ik + log C) = (SupCon_i - log C) / C.
  for seed, tau in [(20, 0.07), (21, 1.0), (22, 10.0)]:
    embeddings, labels, _, label_sets, valid = _problem(seed, 14, 4, padded=True)
    uniform = np.full((14, 4), 0.7, np.float32)  # equal logits -> w = 1/C
    value = _all_losses(embeddings, labels, uniform, label_sets, valid, tau=tau)
    _close(value[1], (value[0] - math.log(4)) / 4)


def test_multilabel_with_one_hot_sets_equals_single_label():
  embeddings, labels, weight_logits, _, valid = _problem(23, 14, 4, padded=True)
  one_hot = np.eye(4, dtype=np.int32)[np.maximum(labels, 0)]
  for tau in (0.07, 1.0):
    value = _all_losses(embeddings, labels, weight_logits, one_hot, valid, tau=tau)
    np.testing.assert_allclose(value[2:4], value[0:2], rtol=1e-5, atol=1e-6)


def test_masking_rows_equals_deleting_them_and_padding_gets_no_gradient():
  embeddings, labels, weight_logits, label_sets, valid = _problem(24, 14, 4, padded=True)
  embeddings[~valid] = np.nan  # padded rows take part in nothing, even as NaN
  weight_logits[~valid] = np.inf
  masked = _all_losses(embeddings, labels, weight_logits, label_sets, valid)
  deleted = _all_losses(
      embeddings[valid], labels[valid], weight_logits[valid], label_sets[valid], None
  )
  np.testing.assert_allclose(masked, deleted, rtol=1e-5, atol=1e-6)
  for g in _grads(embeddings, labels, weight_logits, label_sets, valid):
    assert np.isfinite(g).all()
    np.testing.assert_array_equal(g[~valid], 0.0)
    assert np.abs(g[valid]).max() > 0


def test_permutation_invariance():
  embeddings, labels, weight_logits, label_sets, valid = _problem(24, 14, 4, ties=True, padded=True)
  perm = np.random.default_rng(0).permutation(14)
  np.testing.assert_allclose(
      _all_losses(embeddings, labels, weight_logits, label_sets, valid),
      _all_losses(embeddings[perm], labels[perm], weight_logits[perm], label_sets[perm], valid[perm]),
      rtol=1e-5, atol=1e-6,
  )


def test_embeddings_are_normalised_inside():
  embeddings, labels, weight_logits, label_sets, valid = _problem(26, 14, 4, padded=True)
  scales = np.random.default_rng(1).uniform(0.01, 100.0, size=(14, 1)).astype(np.float32)
  np.testing.assert_allclose(
      _all_losses(embeddings, labels, weight_logits, label_sets, valid)[:4],
      _all_losses(embeddings * scales, labels, weight_logits, label_sets, valid)[:4],
      rtol=1e-5, atol=1e-6,
  )


def test_jit_equals_eager():
  embeddings, labels, weight_logits, label_sets, valid = _problem(27, 14, 4, padded=True)
  eager = np.asarray(_all_losses_jnp(embeddings, labels, weight_logits, label_sets, valid))
  jitted = _all_losses(embeddings, labels, weight_logits, label_sets, valid)
  np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-6)


def test_bf16_inputs_use_float32_math():
  embeddings, labels, weight_logits, label_sets, valid = _problem(28, 16, 5, dim=32, padded=True)
  e16, w16 = jnp.asarray(embeddings, jnp.bfloat16), jnp.asarray(weight_logits, jnp.bfloat16)
  from_bf16 = _all_losses_jit(e16, labels, w16, label_sets, valid)
  assert from_bf16.dtype == jnp.float32
  # Same bf16 values upcast by the caller: identical float32 math, so (near-)equal.
  upcast = _all_losses(e16.astype(jnp.float32), labels, w16.astype(jnp.float32), label_sets, valid)
  np.testing.assert_allclose(np.asarray(from_bf16), upcast, rtol=1e-6, atol=1e-6)
  # Against the float32 originals the only error is bf16's input rounding (8-bit
  # mantissa, relative 2^-9). Stated tolerance at tau = 0.3: 5e-3 * (1 + |loss|)
  # (measured <= 1.1e-3 absolute over 5 seeds, D = 32; <= 6.5e-3 at tau = 0.07).
  exact = _all_losses(embeddings, labels, weight_logits, label_sets, valid)
  np.testing.assert_allclose(np.asarray(from_bf16), exact, rtol=5e-3, atol=5e-3)


def test_vmap_over_a_batch_of_problems():
  problems = [_problem(30 + n, 14, 4, padded=True) for n in range(3)]
  stack = lambda idx: np.stack([p[idx] for p in problems])  # noqa: E731
  embeddings, labels, weight_logits, label_sets, valid = (stack(i) for i in range(5))
  batched = jax.jit(jax.vmap(_all_losses_jnp))(embeddings, labels, weight_logits, label_sets, valid)
  for n in range(3):
    np.testing.assert_allclose(
        np.asarray(batched[n]), _all_losses(*problems[n]), rtol=1e-5, atol=1e-6
    )
  # A batched temperature too.
  taus = jnp.array([0.07, 0.3, 10.0])
  per_tau = jax.jit(jax.vmap(
      lambda t: losses.lcl_loss(embeddings[0], labels[0], weight_logits[0], temperature=t, valid=valid[0])
  ))(taus)
  for t, value in zip([0.07, 0.3, 10.0], np.asarray(per_tau)):
    _close(value, ref_lcl(embeddings[0], labels[0], weight_logits[0], t, valid[0]))


@pytest.mark.parametrize("axis_type", [AxisType.Explicit, AxisType.Auto])
def test_sharded_inputs_give_the_unsharded_value(axis_type):
  assert jax.device_count() == 8, "tests/conftest.py should provide 8 CPU devices"
  mesh = jax.make_mesh((8,), ("batch",), axis_types=(axis_type,))
  rows = NamedSharding(mesh, P("batch"))
  problem = _problem(33, 16, 7, padded=True)  # the shape of a CASES entry (compiled)
  sharded = [jax.device_put(a, rows) for a in problem]
  assert len(sharded[0].sharding.device_set) == 8
  np.testing.assert_allclose(
      np.asarray(_all_losses_jit(*sharded)), _all_losses(*problem), rtol=1e-5, atol=1e-6
  )
  for g_sharded, g in zip(_grads(*sharded), _grads(*problem)):
    np.testing.assert_allclose(g_sharded, g, rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------------------
# Gradients.
# --------------------------------------------------------------------------------------


def test_gradients_match_central_finite_differences_in_float64():
  with jax.enable_x64(True):
    rng = np.random.default_rng(40)
    embeddings, labels, weight_logits, label_sets, valid = _problem(40, 9, 3, padded=True)
    embeddings = embeddings.astype(np.float64)
    weight_logits = weight_logits.astype(np.float64)

    def stacked(e, w):
      tau = 0.2
      return jnp.stack([
          losses.supcon_loss(e, labels, temperature=tau, valid=valid),
          losses.lcl_loss(e, labels, w, temperature=tau, valid=valid),
          losses.multilabel_supcon_loss(e, label_sets, temperature=tau, valid=valid),
          losses.multilabel_lcl_loss(e, label_sets, w, temperature=tau, valid=valid),
          losses.lcl_objective(e[:, :3], w, e, labels, alpha=0.3, temperature=tau, valid=valid)[0],
          losses.lcl_objective(e[:, :3], w, e, label_sets, alpha=0.3, temperature=tau,
                               valid=valid, multilabel=True)[0],
      ])

    fn = jax.jit(stacked)
    # One compiled reverse pass; a one-hot `select` picks the loss whose gradient we want.
    grad_fn = jax.jit(jax.grad(lambda e, w, select: jnp.dot(select, stacked(e, w)), argnums=(0, 1)))
    assert fn(embeddings, weight_logits).dtype == jnp.float64
    eps = 1e-6
    directions = [(rng.normal(size=embeddings.shape), rng.normal(size=weight_logits.shape))
                  for _ in range(2)]
    numeric = [(np.asarray(fn(embeddings + eps * v_e, weight_logits + eps * v_w))
                - np.asarray(fn(embeddings - eps * v_e, weight_logits - eps * v_w))) / (2 * eps)
               for v_e, v_w in directions]
    for n in range(6):
      g_e, g_w = (np.asarray(g) for g in grad_fn(embeddings, weight_logits, np.eye(6)[n]))
      for (v_e, v_w), fd in zip(directions, numeric):
        analytic = np.sum(g_e * v_e) + np.sum(g_w * v_w)
        assert abs(analytic - fd[n]) <= 1e-6 * (1 + abs(fd[n])), (n, analytic, fd[n])
      # Gradient flows into weight_logits for the LCL terms only, never into padding.
      assert (np.abs(g_w).max() > 1e-3) == (n in (1, 3, 4, 5)), n
      np.testing.assert_array_equal(g_e[~valid], 0.0)


def test_gradients_finite_on_degenerate_inputs():
  embeddings, labels, weight_logits, label_sets, valid = _problem(41, 14, 4, padded=True)
  embeddings[3] = 0.0  # zero vector: normalisation must stay finite
  embeddings[5] = embeddings[4]  # exact tie
  labels[4] = labels[5]
  weight_logits[0] = [500.0, -500.0, 0.0, 20.0]  # saturated softmax (f32 weight underflow)
  label_sets[1] = 0  # empty label set
  for tau in (0.05, 1.0, 100.0):
    value = _all_losses(embeddings, labels, weight_logits, label_sets, valid, tau=tau)
    assert np.isfinite(value).all()
    grads = _grads(embeddings, labels, weight_logits, label_sets, valid, tau=tau)
    assert all(np.isfinite(g).all() for g in grads)


# --------------------------------------------------------------------------------------
# Objectives.
# --------------------------------------------------------------------------------------


@jax.jit
def _all_objectives(logits, weight_logits, embeddings, labels, label_sets, valid):
  options = dict(alpha=0.25, temperature=0.3, valid=valid)
  return {
      "ce": losses.ce_objective(logits, labels, valid=valid),
      "ce_ml": losses.ce_objective(logits, label_sets, valid=valid, multilabel=True),
      "scl": losses.scl_objective(logits, embeddings, labels, **options),
      "scl_ml": losses.scl_objective(logits, embeddings, label_sets, multilabel=True, **options),
      "lcl": losses.lcl_objective(logits, weight_logits, embeddings, labels, **options),
      "lcl_ml": losses.lcl_objective(
          logits, weight_logits, embeddings, label_sets, multilabel=True, **options),
  }


def test_objectives_combine_their_terms():
  embeddings, labels, weight_logits, label_sets, valid = _problem(50, 12, 4, padded=True)
  logits = np.random.default_rng(2).normal(size=(12, 4)).astype(np.float32)
  alpha, tau = 0.25, 0.3
  out = _all_objectives(logits, weight_logits, embeddings, labels, label_sets, valid)
  for name, (total, parts) in out.items():
    assert float(parts["total"]) == float(total), name
    assert all(v.shape == () and v.dtype == jnp.float32 for v in parts.values()), name

  total, parts = out["ce"]
  assert set(parts) == {"ce", "total"}
  _close(total, ref_softmax_ce(logits, labels, valid))

  total, parts = out["ce_ml"]
  _close(total, ref_sigmoid_bce(logits, label_sets, valid))

  total, parts = out["scl"]
  assert set(parts) == {"ce", "contrastive", "total"}
  ce, scl = ref_softmax_ce(logits, labels, valid), ref_supcon(embeddings, labels, tau, valid)
  _close(parts["ce"], ce)
  _close(parts["contrastive"], scl)
  _close(total, alpha * ce + (1 - alpha) * scl)

  total, parts = out["scl_ml"]
  bce, mscl = ref_sigmoid_bce(logits, label_sets, valid), ref_multilabel_supcon(embeddings, label_sets, tau, valid)
  _close(total, alpha * bce + (1 - alpha) * mscl)

  total, parts = out["lcl"]
  assert set(parts) == {"ce", "weighting_ce", "contrastive", "total"}
  l_e = ref_softmax_ce(logits, labels, valid)
  l_w = ref_softmax_ce(weight_logits, labels, valid)
  l_lcl = ref_lcl(embeddings, labels, weight_logits, tau, valid)
  _close(parts["ce"], l_e)
  _close(parts["weighting_ce"], l_w)
  _close(parts["contrastive"], l_lcl)
  _close(total, alpha * (l_w + l_e) + (1 - alpha) * l_lcl)

  total, parts = out["lcl_ml"]
  l_e = ref_sigmoid_bce(logits, label_sets, valid)
  l_w = ref_sigmoid_bce(weight_logits, label_sets, valid)
  l_lcl = ref_multilabel_lcl(embeddings, label_sets, weight_logits, tau, valid)  # softmax weights
  _close(parts["weighting_ce"], l_w)
  _close(parts["contrastive"], l_lcl)
  _close(total, alpha * (l_w + l_e) + (1 - alpha) * l_lcl)


# --------------------------------------------------------------------------------------
# Bad input.
# --------------------------------------------------------------------------------------

_E = np.zeros((4, 3), np.float32)
_Y = np.array([0, 1, 0, 1], np.int32)
_W = np.zeros((4, 2), np.float32)
_S = np.array([[1, 0], [0, 1], [1, 1], [0, 1]], np.int32)
_V = np.ones(4, bool)

BAD_INPUTS = [
    ("rank-3 embeddings", lambda: losses.supcon_loss(_E[None], _Y, temperature=0.1), r"`embeddings`.*\(1, 4, 3\)"),
    ("integer embeddings", lambda: losses.supcon_loss(_E.astype(np.int32), _Y, temperature=0.1), r"`embeddings`.*int32"),
    ("float labels", lambda: losses.supcon_loss(_E, _Y.astype(np.float32), temperature=0.1), r"`labels`.*integer.*float32"),
    ("short labels", lambda: losses.lcl_loss(_E, _Y[:3], _W, temperature=0.1), r"`labels`.*\(4,\).*\(3,\)"),
    ("multi-hot to single", lambda: losses.supcon_loss(_E, _S, temperature=0.1), r"`labels`.*multi"),
    ("weight batch", lambda: losses.lcl_loss(_E, _Y, _W[:3], temperature=0.1), r"`weight_logits`.*\(3, 2\)"),
    ("weight rank", lambda: losses.lcl_loss(_E, _Y, _W[:, 0], temperature=0.1), r"`weight_logits`.*\(4,\)"),
    ("weight dtype", lambda: losses.lcl_loss(_E, _Y, _W.astype(np.int32), temperature=0.1), r"`weight_logits`.*int32"),
    ("weight width", lambda: losses.multilabel_lcl_loss(_E, _S, np.zeros((4, 3), np.float32), temperature=0.1), r"`weight_logits`.*C = 2.*\(4, 3\)"),
    ("float label sets", lambda: losses.multilabel_supcon_loss(_E, _S.astype(np.float32), temperature=0.1), r"`label_sets`.*float32"),
    ("label set rank", lambda: losses.multilabel_supcon_loss(_E, _Y, temperature=0.1), r"`label_sets`.*\(4,\)"),
    ("valid shape", lambda: losses.supcon_loss(_E, _Y, temperature=0.1, valid=_V[:2]), r"`valid`.*\(2,\)"),
    ("valid dtype", lambda: losses.supcon_loss(_E, _Y, temperature=0.1, valid=_V.astype(np.int32)), r"`valid`.*int32"),
    ("zero temperature", lambda: losses.supcon_loss(_E, _Y, temperature=0.0), r"`temperature`"),
    ("negative temperature", lambda: losses.lcl_loss(_E, _Y, _W, temperature=-1.0), r"`temperature`"),
    ("alpha range", lambda: losses.scl_objective(_W, _E, _Y, alpha=1.5, temperature=0.1), r"`alpha`"),
    ("ce labels", lambda: losses.softmax_cross_entropy(_W, _Y[:, None]), r"`labels`"),
    ("bce width", lambda: losses.sigmoid_binary_cross_entropy(_W, np.zeros((4, 3), np.int32)), r"`label_sets`.*3 classes.*2"),
    ("objective weight width", lambda: losses.lcl_objective(_W, np.zeros((4, 3), np.float32), _E, _Y, alpha=0.5, temperature=0.1), r"`weight_logits`.*C = 2"),
    ("objective batch", lambda: losses.scl_objective(_W[:3], _E, _Y, alpha=0.5, temperature=0.1), r"`logits` \(3, 2\).*`embeddings` \(4, 3\)"),
    ("objective multilabel flag", lambda: losses.ce_objective(_W, _S), r"multilabel=True"),
    ("objective multilabel labels", lambda: losses.ce_objective(_W, _Y, multilabel=True), r"`label_sets`.*\(4,\)"),
    # Issue 14 item 17: string labels name the argument (not a JAX TypeError).
    ("string labels", lambda: losses.supcon_loss(_E, np.array(["a", "b", "a", "b"]), temperature=0.1), r"supcon_loss: `labels`.*numeric"),
    ("string label list", lambda: losses.lcl_loss(_E, ["a", "b", "a", "b"], _W, temperature=0.1), r"lcl_loss: `labels`.*numeric"),
    ("string labels ce", lambda: losses.softmax_cross_entropy(_W, np.array(list("abab"))), r"`labels`.*numeric"),
    ("string labels objective", lambda: losses.scl_objective(_W, _E, np.array(list("abab")), alpha=0.5, temperature=0.1), r"`labels`.*numeric"),
    ("string label sets", lambda: losses.multilabel_supcon_loss(_E, np.array([["a", "b"]] * 4), temperature=0.1), r"`label_sets`.*numeric"),
    ("object labels", lambda: losses.supcon_loss(_E, np.array([0, "b", 0, 1], dtype=object), temperature=0.1), r"`labels`"),
    ("eager inf temperature", lambda: losses.multilabel_supcon_loss(_E, _S, temperature=float("inf")), r"`temperature`"),
    ("eager negative temperature ml lcl", lambda: losses.multilabel_lcl_loss(_E, _S, _W, temperature=-0.5), r"`temperature`"),
    ("eager zero temperature objective", lambda: losses.lcl_objective(_W, _W, _E, _Y, alpha=0.5, temperature=np.float32(0)), r"`temperature`"),
]


@pytest.mark.parametrize("name,call,pattern", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_raises_value_error(name, call, pattern):
  with pytest.raises(ValueError, match=pattern):
    call()


_EMPTY = dict(e=np.zeros((0, 3), np.float32), y=np.zeros((0,), np.int32),
              w=np.zeros((0, 2), np.float32), s=np.zeros((0, 2), np.int32))
EMPTY_BATCH = [
    ("supcon_loss", lambda e, y, w, s: losses.supcon_loss(e, y, temperature=0.1)),
    ("lcl_loss", lambda e, y, w, s: losses.lcl_loss(e, y, w, temperature=0.1)),
    ("multilabel_supcon_loss", lambda e, y, w, s: losses.multilabel_supcon_loss(e, s, temperature=0.1)),
    ("multilabel_lcl_loss", lambda e, y, w, s: losses.multilabel_lcl_loss(e, s, w, temperature=0.1)),
    ("softmax_cross_entropy", lambda e, y, w, s: losses.softmax_cross_entropy(w, y)),
    ("sigmoid_binary_cross_entropy", lambda e, y, w, s: losses.sigmoid_binary_cross_entropy(w, s)),
    ("ce_objective", lambda e, y, w, s: losses.ce_objective(w, y)[0]),
    ("scl_objective", lambda e, y, w, s: losses.scl_objective(w, e, y, alpha=0.5, temperature=0.1)[0]),
    ("lcl_objective", lambda e, y, w, s: losses.lcl_objective(w, w, e, y, alpha=0.5, temperature=0.1)[0]),
    ("scl_objective multilabel", lambda e, y, w, s: losses.scl_objective(w, e, s, alpha=0.5, temperature=0.1, multilabel=True)[0]),
    ("lcl_objective multilabel", lambda e, y, w, s: losses.lcl_objective(w, w, e, s, alpha=0.5, temperature=0.1, multilabel=True)[0]),
]


@pytest.mark.parametrize("name,fn", EMPTY_BATCH, ids=[c[0] for c in EMPTY_BATCH])
def test_empty_batch_returns_zero_with_zero_gradients(name, fn):
  """Issue 14 item 17: B = 0 gives the documented 0 (eager, jitted, differentiated)."""
  args = (_EMPTY["e"], _EMPTY["y"], _EMPTY["w"], _EMPTY["s"])
  assert float(fn(*args)) == 0.0
  assert float(jax.jit(fn)(*args)) == 0.0
  grads = jax.grad(fn, argnums=(0, 2))(*args)
  assert all(g.shape[0] == 0 for g in grads)


TRACED_TEMPERATURE = [
    ("supcon_loss", lambda t: losses.supcon_loss(_E + np.eye(4, 3, dtype=np.float32), _Y, temperature=t)),
    ("lcl_loss", lambda t: losses.lcl_loss(_E + np.eye(4, 3, dtype=np.float32), _Y, _W, temperature=t)),
    ("multilabel_supcon_loss", lambda t: losses.multilabel_supcon_loss(_E + np.eye(4, 3, dtype=np.float32), _S, temperature=t)),
    ("multilabel_lcl_loss", lambda t: losses.multilabel_lcl_loss(_E + np.eye(4, 3, dtype=np.float32), _S, _W, temperature=t)),
    ("scl_objective", lambda t: losses.scl_objective(_W, _E + np.eye(4, 3, dtype=np.float32), _Y, alpha=0.5, temperature=t)[0]),
    ("lcl_objective", lambda t: losses.lcl_objective(_W, _W, _E + np.eye(4, 3, dtype=np.float32), _Y, alpha=0.5, temperature=t)[0]),
]


@pytest.mark.parametrize("name,fn", TRACED_TEMPERATURE, ids=[c[0] for c in TRACED_TEMPERATURE])
def test_non_positive_traced_temperature_gives_nan(name, fn):
  """Issue 14 item 17: a traced temperature <= 0 cannot raise; the loss is NaN (not inf,
  not a finite number). Eager values raise (BAD_INPUTS); a positive one stays finite."""
  jitted = jax.jit(fn)
  for t in (0.0, -0.0, -0.3, -np.inf):
    assert np.isnan(float(jitted(t))), t
  assert np.isfinite(float(jitted(0.3)))
  _close(jitted(0.3), fn(0.3))
  with pytest.raises(ValueError, match="`temperature`"):
    fn(-0.3)


def test_bad_input_raises_at_trace_time_under_jit():
  with pytest.raises(ValueError, match=r"`weight_logits`.*\(4, 3\)"):
    jax.jit(lambda e, y, w, s: losses.multilabel_lcl_loss(e, s, w, temperature=0.1))(
        _E, _Y, np.zeros((4, 3), np.float32), _S
    )


# --------------------------------------------------------------------------------------
# Package surface and docs.
# --------------------------------------------------------------------------------------


def test_public_api_and_doctests():
  from lcl_jax import lcl_loss, multilabel_lcl_loss, supcon_loss  # noqa: F401

  assert lcl_jax.__version__ == "0.1.0"
  for name in losses.__all__:
    assert getattr(lcl_jax, name) is getattr(losses, name)
  result = doctest.testmod(losses, raise_on_error=False, verbose=False)
  assert result.attempted >= 20
  assert result.failed == 0


def test_reference_itself_on_a_hand_computed_case():
  """Guards the references: two orthogonal pairs, computed by hand."""
  embeddings = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
  labels = np.array([0, 0, 1, 1])
  tau = 1.0
  # Anchor 0: s = [_, 1, 0, 0]; log-prob of the positive = 1 - log(e + 2).
  expected = -(1.0 - math.log(math.e + 2.0))
  assert abs(ref_supcon(embeddings, labels, tau) - expected) < 1e-12
  # LCL with weights (softmax) [0.75, 0.25] for anchor class, [0.25, 0.75] otherwise:
  logit = math.log(3.0)
  wl = np.array([[logit, 0.0], [logit, 0.0], [0.0, logit], [0.0, logit]])
  expected_lcl = -0.75 * (1.0 - math.log(0.75 * math.e + 2 * 0.25))
  assert abs(ref_lcl(embeddings, labels, wl, tau) - expected_lcl) < 1e-12
  _close(jax.jit(losses.lcl_loss)(embeddings.astype(np.float32), labels, wl.astype(np.float32),
                                  temperature=tau), expected_lcl)



# --------------------------------------------------------------------------------------
# reduction='sum': seed 001's formulas (issue 18 item 16).
# --------------------------------------------------------------------------------------


def ref_seed001_summed(embeddings, labels, tau, weight_logits=None):
  """Modarres & Raeisi (seed 001), transcribed as printed, in float64 loops:

  SCL (Sec. 3.3): sum_{i=1}^K -1/|P| sum_{p in P} log( exp(h_i.h_p/tau) /
                  sum_{k in I \\ i} exp(h_i.h_k/tau) );
  LCL (Sec. 3.4): L_i = sum_{p in P} w_{i,y_i} log( exp(h_i.h_p/tau) /
                  sum_{k in I \\ i} w_{i,y_k} exp(h_i.h_k/tau) ),
                  L_LCL = sum_{i=1}^K -1/|P| L_i,  w_i = softmax(weighting logits_i).

  P = the other instances of i's class; h = unit rows. An anchor with |P| = 0 (the
  formula's -1/0 * 0) is left out. No mean anywhere.
  """
  h = _unit_rows(embeddings)
  count = h.shape[0]
  w = (np.ones((count, int(np.max(labels)) + 1)) if weight_logits is None
       else np.stack([_softmax_row(r) for r in np.asarray(weight_logits)]))
  total = 0.0
  for i in range(count):
    positives = [p for p in range(count) if p != i and labels[p] == labels[i]]
    if not positives:
      continue
    denominator = sum(w[i, labels[k]] * math.exp(float(h[i] @ h[k]) / tau)
                      for k in range(count) if k != i)
    l_i = sum(w[i, labels[i]] * math.log(math.exp(float(h[i] @ h[p]) / tau) / denominator)
              for p in positives)
    total += -l_i / len(positives)
  return total


@pytest.mark.parametrize("labels", [
    [0, 1, 2, 0, 1, 2, 0, 1, 2, 1],  # every anchor has a positive: sum = K x mean
    [0, 0, 1, 1, 2, 3, 3, 3, 4, 5],  # rows 4, 8, 9 have none: sum over the other 7
], ids=["all_positive", "some_alone"])
@pytest.mark.parametrize("tau", [0.3, 10.0])  # the paper's tau and seed 001's best
def test_sum_reduction_is_seed001_summed_formula(labels, tau):
  embeddings, _, weight_logits, _, _ = _problem(60, 10, 6)
  labels = np.asarray(labels, np.int32)
  with_positive = sum(int(np.sum(labels == y)) > 1 for y in labels)
  for name, call, reference in (
      ("supcon", lambda **kw: losses.supcon_loss(embeddings, labels, temperature=tau, **kw),
       ref_seed001_summed(embeddings, labels, tau)),
      ("lcl", lambda **kw: losses.lcl_loss(embeddings, labels, weight_logits, temperature=tau,
                                           **kw),
       ref_seed001_summed(embeddings, labels, tau, weight_logits))):
    summed = call(reduction="sum")
    _close(summed, reference)
    _close(jax.jit(lambda: call(reduction="sum"))(), reference)
    # = N x the mean over the N anchors with a positive; the default is the mean.
    _close(summed, with_positive * float(call(reduction="mean")))
    assert float(call()) == float(call(reduction="mean")), name
    assert abs(float(summed) - float(call())) > 1e-3, name


def test_sum_reduction_of_the_multilabel_losses_and_the_gradient():
  """The multi-label losses sum too (N x their reference mean), and d(sum) = N d(mean)."""
  embeddings, labels, weight_logits, label_sets, valid = _problem(61, 13, 5, padded=True)
  rows = np.flatnonzero(valid)
  sets = [set(np.flatnonzero(label_sets[i])) for i in rows]
  anchors = sum(any(j != i and sets[i] & sets[j] for j in range(len(rows)))
                for i in range(len(rows)))
  assert 0 < anchors
  _close(losses.multilabel_supcon_loss(embeddings, label_sets, temperature=0.3, valid=valid,
                                       reduction="sum"),
         anchors * ref_multilabel_supcon(embeddings, label_sets, 0.3, valid))
  _close(losses.multilabel_lcl_loss(embeddings, label_sets, weight_logits, temperature=0.3,
                                    valid=valid, reduction="sum"),
         anchors * ref_multilabel_lcl(embeddings, label_sets, weight_logits, 0.3, valid))
  grad = lambda reduction: jax.grad(lambda e: losses.lcl_loss(
      e, labels, weight_logits, temperature=0.3, valid=valid, reduction=reduction))(embeddings)
  positive_anchors = sum(int(np.sum(labels[rows] == labels[i])) > 1 for i in rows)
  np.testing.assert_allclose(grad("sum"), positive_anchors * grad("mean"), rtol=1e-5,
                             atol=1e-6)
  assert not np.asarray(grad("sum"))[~valid].any()


def test_objectives_pass_the_reduction_to_their_contrastive_term():
  embeddings, labels, weight_logits, _, valid = _problem(62, 12, 3, padded=True)
  logits = np.random.default_rng(3).normal(size=(12, 3)).astype(np.float32)
  options = dict(alpha=0.2, temperature=10.0, valid=valid)
  for name, objective, contrastive in (
      ("scl", lambda **kw: losses.scl_objective(logits, embeddings, labels, **options, **kw),
       lambda: losses.supcon_loss(embeddings, labels, temperature=10.0, valid=valid,
                                  reduction="sum")),
      ("lcl", lambda **kw: losses.lcl_objective(logits, weight_logits, embeddings, labels,
                                                **options, **kw),
       lambda: losses.lcl_loss(embeddings, labels, weight_logits, temperature=10.0,
                               valid=valid, reduction="sum"))):
    total, parts = objective(reduction="sum")
    assert float(parts["contrastive"]) == float(contrastive()), name
    classification = float(parts["ce"]) + float(parts.get("weighting_ce", 0.0))
    _close(total, 0.2 * classification + 0.8 * float(contrastive()))
    mean = float(objective()[1]["contrastive"])
    assert abs(mean) < abs(float(parts["contrastive"])) / 2, name


@pytest.mark.parametrize("call", [
    lambda r: losses.supcon_loss(_E, _Y, temperature=0.1, reduction=r),
    lambda r: losses.lcl_loss(_E, _Y, _W, temperature=0.1, reduction=r),
    lambda r: losses.multilabel_supcon_loss(_E, _S, temperature=0.1, reduction=r),
    lambda r: losses.multilabel_lcl_loss(_E, _S, _W, temperature=0.1, reduction=r),
    lambda r: losses.scl_objective(_W, _E, _Y, alpha=0.5, temperature=0.1, reduction=r),
    lambda r: losses.lcl_objective(_W, _W, _E, _Y, alpha=0.5, temperature=0.1, reduction=r),
], ids=["supcon", "lcl", "ml_supcon", "ml_lcl", "scl_objective", "lcl_objective"])
def test_unknown_reduction_is_refused_by_name(call):
  for bad in ("Sum", "none", None, 1):
    with pytest.raises(ValueError, match=r"`reduction` must be one of \('mean', 'sum'\)"):
      call(bad)
