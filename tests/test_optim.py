"""The optimiser against PyTorch's AdamW + linear schedule + per-network clipping.

The reference is what the authors' release does: `AdamW` with parameter groups
(no decay on 'bias' and 'LayerNorm.weight'), `get_linear_schedule_with_warmup(0, T)`,
and `clip_grad_norm_(max_norm=1.0)` called on each network separately.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from lcl_jax.train import optim


def _params(rng):
  def net(scale):
    return {
        "encoder": {
            "layer": {"0": {"dense": {"kernel": rng.normal(size=(4, 3)) * scale,
                                      "bias": rng.normal(size=(3,)) * scale},
                            "LayerNorm": {"scale": 1 + rng.normal(size=(3,)) * 0.1,
                                          "bias": rng.normal(size=(3,)) * 0.1}}},
        },
        "head": {"out": {"kernel": rng.normal(size=(3, 2)) * scale,
                         "bias": np.zeros((2,))}},
    }
  return {"primary": net(1.0), "weighting": net(0.5)}


def test_decay_mask_excludes_biases_and_layernorm():
  params = _params(np.random.default_rng(0))
  mask = optim.decay_mask(params["primary"])
  assert mask["encoder"]["layer"]["0"]["dense"]["kernel"] is True
  assert mask["encoder"]["layer"]["0"]["dense"]["bias"] is False
  assert mask["encoder"]["layer"]["0"]["LayerNorm"]["scale"] is False
  assert mask["encoder"]["layer"]["0"]["LayerNorm"]["bias"] is False
  assert mask["head"]["out"]["kernel"] is True


def _float64_problem(seed, grad_scale, num_steps):
  """float64 parameters of two networks and `num_steps` random gradients."""
  rng = np.random.default_rng(seed)
  params = jax.tree.map(lambda x: np.asarray(x, np.float64), _params(rng))
  grads_seq = [jax.tree.map(lambda x: rng.normal(size=x.shape) * grad_scale, params)
               for _ in range(num_steps)]
  return params, grads_seq


def _run_ours(params, grads_seq, **optimizer_kwargs):
  """make_optimizer applied to `grads_seq` in float64; the final leaves."""
  with jax.enable_x64(True):
    p = jax.tree.map(jnp.asarray, params)
    tx = optim.make_optimizer(p, **optimizer_kwargs)
    state = tx.init(p)
    for grads in grads_seq:
      updates, state = tx.update(jax.tree.map(jnp.asarray, grads), state, p)
      p = optax.apply_updates(p, updates)
    return [np.asarray(x) for x in jax.tree.leaves(p)]


@pytest.mark.parametrize("grad_scale,schedule", [(0.01, "linear"), (10.0, "linear"),
                                                 (10.0, "constant")])  # below/above the clip norm
def test_matches_torch_adamw_linear_schedule_per_network_clipping(grad_scale, schedule):
  params, grads_seq = _float64_problem(1, grad_scale, 4)
  total_steps, lr, wd = 5, 2e-3, 0.01

  # Reference: PyTorch, float64, the release's recipe.
  names, leaves = zip(*[(jax.tree_util.keystr(p), v)
                        for p, v in jax.tree_util.tree_leaves_with_path(params)])
  tensors = [torch.tensor(v, requires_grad=True) for v in leaves]
  no_decay = lambda n: n.endswith("['bias']") or "LayerNorm" in n
  groups = [{"params": [t for n, t in zip(names, tensors) if not no_decay(n)], "weight_decay": wd},
            {"params": [t for n, t in zip(names, tensors) if no_decay(n)], "weight_decay": 0.0}]
  opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-6)
  sched = torch.optim.lr_scheduler.LambdaLR(
      opt, (lambda step: max(0.0, (total_steps - step) / total_steps)) if schedule == "linear"
      else (lambda step: 1.0))
  for grads in grads_seq:
    for t, g in zip(tensors, jax.tree.leaves(grads)):
      t.grad = torch.tensor(g)
    for net in ("primary", "weighting"):
      torch.nn.utils.clip_grad_norm_(
          [t for n, t in zip(names, tensors) if n.startswith(f"['{net}']")], max_norm=1.0)
    opt.step()
    sched.step()

  ours = _run_ours(params, grads_seq, learning_rate=lr, total_steps=total_steps,
                   weight_decay=wd, schedule=schedule)

  # NOTE: optax evaluates the schedule in float32 (relative error ~5e-8); a missing
  # weight decay alone would move these parameters by ~2e-5 relative.
  for name, mine, ref in zip(names, ours, tensors):
    np.testing.assert_allclose(mine, ref.detach().numpy(), rtol=1e-6, atol=1e-9, err_msg=name)


def test_clipping_is_per_network():
  """A huge gradient on one network must not shrink the other network's update."""
  params = {"primary": {"w": jnp.ones(3)}, "weighting": {"w": jnp.ones(3)}}
  tx = optim.make_optimizer(params, learning_rate=1.0, total_steps=10, weight_decay=0.0)
  small = {"primary": {"w": jnp.full(3, 1e-3)}, "weighting": {"w": jnp.full(3, 1e-3)}}
  big = {"primary": {"w": jnp.full(3, 1e-3)}, "weighting": {"w": jnp.full(3, 1e6)}}
  # After clipping, Adam's first update is sign-like; compare the optimiser's clip stage
  # directly: the primary network's clipped gradient is the same in both cases.
  state = tx.init(params)
  u_small, _ = tx.update(small, state, params)
  u_big, _ = tx.update(big, state, params)
  np.testing.assert_allclose(u_small["primary"]["w"], u_big["primary"]["w"], rtol=1e-6)
  with pytest.raises(ValueError, match="networks"):
    tx.update({"primary": small["primary"]}, state, params)


@pytest.mark.parametrize("epsilon_mode", ["optax", "legacy_hf"])
def test_freeze_encoders_updates_heads_only_as_a_head_only_optimizer(epsilon_mode):
  """Stage 2 of two-stage training: zero encoder updates; the heads get exactly the
  updates (clipping by the head's own norm, AdamW) of an optimiser over the heads alone."""
  rng = np.random.default_rng(2)
  params = {net: {"encoder": {"w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)},
                  "head": {"w": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32),
                           "bias": jnp.zeros(2)}}
            for net in ("primary", "weighting")}
  grads = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape) * 5, jnp.float32), params)
  frozen = optim.make_optimizer(params, learning_rate=1e-2, total_steps=4, weight_decay=0.1,
                                schedule="constant", freeze_encoders=True,
                                epsilon_mode=epsilon_mode)
  heads = {net: {"head": p["head"]} for net, p in params.items()}
  reference = optim.make_optimizer(heads, learning_rate=1e-2, total_steps=4, weight_decay=0.1,
                                   schedule="constant", epsilon_mode=epsilon_mode)
  state, ref_state = frozen.init(params), reference.init(heads)
  for _ in range(3):
    updates, state = frozen.update(grads, state, params)
    ref_updates, ref_state = reference.update(
        {net: {"head": g["head"]} for net, g in grads.items()}, ref_state, heads)
    for net in params:
      assert not np.any(np.asarray(updates[net]["encoder"]["w"]))
      jax.tree.map(np.testing.assert_array_equal, updates[net]["head"], ref_updates[net]["head"])
  with pytest.raises(ValueError, match="schedule"):
    optim.make_optimizer(params, learning_rate=1.0, total_steps=2, schedule="cosine")


def _legacy_hf_adamw_numpy(params, grads_seq, *, lr, total_steps, wd, b1=0.9, b2=0.999,
                           eps=1e-6, clip=1.0):
  """Float64 NumPy transcription of the release's optimiser step with transformers'
  legacy `AdamW.step` (correct_bias=True): per-network clip_grad_norm_, then for every
  tensor m, v update; denom = sqrt(v) + eps; step_size = lr*sqrt(1-b2^t)/(1-b1^t);
  p -= step_size*m/denom; then p -= lr*wd*p on the decayed group; LambdaLR linear decay."""
  names = [jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_leaves_with_path(params)]
  p = {n: np.array(v, np.float64) for n, v in
       zip(names, jax.tree.leaves(params))}
  m = {n: np.zeros_like(v) for n, v in p.items()}
  v = {n: np.zeros_like(x) for n, x in p.items()}
  no_decay = lambda n: n.endswith("['bias']") or "LayerNorm" in n
  for t, grads in enumerate(grads_seq, start=1):
    g = {n: np.array(x, np.float64) for n, x in zip(names, jax.tree.leaves(grads))}
    for net in ("primary", "weighting"):
      members = [n for n in names if n.startswith(f"['{net}']")]
      norm = np.sqrt(sum(np.sum(g[n] ** 2) for n in members))
      coef = min(1.0, clip / (norm + 1e-6))
      for n in members:
        g[n] = g[n] * coef
    group_lr = lr * max(0.0, (total_steps - (t - 1)) / total_steps)
    for n in names:
      m[n] = b1 * m[n] + (1 - b1) * g[n]
      v[n] = b2 * v[n] + (1 - b2) * g[n] * g[n]
      denom = np.sqrt(v[n]) + eps
      step_size = group_lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
      p[n] = p[n] - step_size * m[n] / denom
      if not no_decay(n):
        p[n] = p[n] - group_lr * wd * p[n]
  return names, p


@pytest.mark.parametrize("grad_scale", [1e-4, 10.0])  # sqrt(v) ~ eps, and clipped
def test_legacy_hf_adamw_matches_numpy_transcription(grad_scale):
  params, grads_seq = _float64_problem(2, grad_scale, 5)
  # Large lr*wd so that decaying p instead of the updated p' is visible (~1e-4).
  total_steps, lr, wd = 6, 5e-2, 0.1
  names, ref = _legacy_hf_adamw_numpy(params, grads_seq, lr=lr, total_steps=total_steps, wd=wd)
  legacy, modern = (_run_ours(params, grads_seq, learning_rate=lr, total_steps=total_steps,
                              weight_decay=wd, epsilon_mode=mode)
                    for mode in ("legacy_hf", "optax"))
  # The schedule and bias corrections are evaluated in float32 (~1e-7 relative).
  for name, mine in zip(names, legacy):
    np.testing.assert_allclose(mine, ref[name], rtol=1e-6, atol=1e-10, err_msg=name)
  # The two rules really differ (else this test could not tell them apart).
  worst = max(np.max(np.abs(a - ref[n])) / np.max(np.abs(ref[n]) + 1e-12)
              for n, a in zip(names, modern))
  assert worst > 1e-5


def test_epsilon_mode_is_validated():
  params = {"primary": {"w": jnp.ones(3)}}
  with pytest.raises(ValueError, match="adam_epsilon_mode"):
    optim.make_optimizer(params, learning_rate=1e-3, total_steps=3, epsilon_mode="adam")
