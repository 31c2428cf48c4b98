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


@pytest.mark.parametrize("grad_scale,schedule", [(0.01, "linear"), (10.0, "linear"),
                                                 (10.0, "constant")])  # below/above the clip norm
def test_matches_torch_adamw_linear_schedule_per_network_clipping(grad_scale, schedule):
  rng = np.random.default_rng(1)
  params = jax.tree.map(lambda x: np.asarray(x, np.float64), _params(rng))
  total_steps, lr, wd = 5, 2e-3, 0.01
  grads_seq = [jax.tree.map(lambda x: rng.normal(size=x.shape) * grad_scale, params)
               for _ in range(4)]

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

  # Ours.
  with jax.enable_x64(True):
    p = jax.tree.map(jnp.asarray, params)
    tx = optim.make_optimizer(p, learning_rate=lr, total_steps=total_steps, weight_decay=wd,
                              schedule=schedule)
    state = tx.init(p)
    for grads in grads_seq:
      updates, state = tx.update(jax.tree.map(jnp.asarray, grads), state, p)
      p = optax.apply_updates(p, updates)
    ours = [np.asarray(x) for x in jax.tree.leaves(p)]

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


def test_freeze_encoders_updates_heads_only_as_a_head_only_optimizer():
  """Stage 2 of two-stage training: zero encoder updates; the heads get exactly the
  updates (clipping by the head's own norm, AdamW) of an optimiser over the heads alone."""
  rng = np.random.default_rng(2)
  params = {net: {"encoder": {"w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)},
                  "head": {"w": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32),
                           "bias": jnp.zeros(2)}}
            for net in ("primary", "weighting")}
  grads = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape) * 5, jnp.float32), params)
  frozen = optim.make_optimizer(params, learning_rate=1e-2, total_steps=4, weight_decay=0.1,
                                schedule="constant", freeze_encoders=True)
  heads = {net: {"head": p["head"]} for net, p in params.items()}
  reference = optim.make_optimizer(heads, learning_rate=1e-2, total_steps=4, weight_decay=0.1,
                                   schedule="constant")
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
