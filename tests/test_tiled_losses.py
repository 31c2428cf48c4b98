"""Tiled and ring contrastive losses equal the dense ones (lcl_jax/tiled_losses.py), and
the public losses (lcl_jax.lcl_loss etc., lcl_jax/losses/api.py) choose among them.

The reference is lcl_jax.losses.contrastive, the dense losses (themselves checked against a NumPy transcription and the
release's PyTorch code in test_losses.py). Values and gradients (features, weighting
logits, temperature) must agree to 1e-5 relative over batches that are not multiples
of the tile, with padded rows, one-class batches and all-unique labels, on one device
(tiles) and on 8 virtual CPU devices (ring; tests/conftest.py sets XLA_FLAGS).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lcl_jax
from lcl_jax import tiled_losses
from lcl_jax.losses import api
from lcl_jax.losses import contrastive as losses  # the dense reference

LOSSES = ("supcon_loss", "lcl_loss", "multilabel_supcon_loss", "multilabel_lcl_loss")
C = 5


def _case(batch, kind, seed):
  rng = np.random.default_rng(seed)
  features = rng.normal(size=(batch, 12)).astype(np.float32)
  weight_logits = (2 * rng.normal(size=(batch, C))).astype(np.float32)
  valid = np.ones(batch, bool)
  if kind == "one_class":
    labels = np.full(batch, 3, np.int32)
    label_sets = np.zeros((batch, C), np.int32)
    label_sets[:, 3] = 1
  elif kind == "all_unique":  # every anchor without positives (single-label), loss 0
    labels = np.arange(batch, dtype=np.int32) % 10_000
    label_sets = np.eye(batch, C, dtype=np.int32)
  else:
    labels = rng.integers(0, C, batch).astype(np.int32)
    label_sets = (rng.random((batch, C)) < 0.3).astype(np.int32)
  if kind == "padded":
    valid = rng.random(batch) > 0.3
    features[~valid] = np.nan  # padded rows' contents must not reach value or gradient
  if kind == "all_unique":
    weight_logits = weight_logits[:, :C]
  return (jnp.asarray(features), jnp.asarray(labels), jnp.asarray(label_sets),
          jnp.asarray(weight_logits), jnp.asarray(valid))


def _loss_and_grads(module, name, case, temperature=0.3, **kwargs):
  features, labels, label_sets, weight_logits, valid = case
  targets = label_sets if name.startswith("multilabel") else labels
  if name == "lcl_loss" and int(jnp.max(labels)) >= C:
    weight_logits = jnp.zeros((features.shape[0], int(jnp.max(labels)) + 1))

  def f(x, w, t):
    args = (x, targets, w) if name.endswith("lcl_loss") else (x, targets)
    return getattr(module, name)(*args, temperature=t, valid=valid, **kwargs)

  value, grads = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))(
      features, weight_logits, jnp.float32(temperature))
  return value, grads


def _assert_close(got, want, what):
  got, want = np.asarray(got), np.asarray(want)
  assert np.all(np.isfinite(got)), f"{what}: non-finite"
  scale = max(float(np.max(np.abs(want))), 1e-30)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale, err_msg=what)


def _assert_equal_to_dense(name, case, **kwargs):
  want_value, want_grads = _loss_and_grads(losses, name, case)
  got_value, got_grads = _loss_and_grads(tiled_losses, name, case, **kwargs)
  _assert_close(got_value, want_value, f"{name} value")
  for label, got, want in zip(("features", "weight_logits", "temperature"), got_grads,
                              want_grads):
    _assert_close(got, want, f"{name} d/d{label}")
  valid = np.asarray(case[4])
  assert np.all(np.asarray(got_grads[0])[~valid] == 0), "padded rows got a gradient"
  return float(want_value)


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("batch,tile,kind", [
    (37, 8, "mixed"),       # B not a multiple of the tile
    (37, 8, "padded"),      # masked rows (NaN contents)
    (24, 64, "one_class"),  # one tile larger than the batch
    (19, 4, "all_unique"),
])
def test_tiled_equals_dense(name, batch, tile, kind):
  value = _assert_equal_to_dense(name, _case(batch, kind, seed=batch + tile),
                                 tile_size=tile)
  if kind == "all_unique" and not name.startswith("multilabel"):
    assert value == 0.0


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("batch,tile,kind", [
    (40, 3, "padded"),      # 5 rows per device, tiles of 3 (not a divisor)
    (24, 2, "one_class"),
    (32, 4, "all_unique"),
])
def test_ring_on_8_devices_equals_dense(name, batch, tile, kind):
  assert len(jax.devices()) >= 8, "conftest must provide 8 CPU devices"
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=jax.devices()[:8])
  _assert_equal_to_dense(name, _case(batch, kind, seed=batch * tile), tile_size=tile,
                         mesh=mesh)


def test_ring_inputs_already_sharded_and_objective_dispatch():
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=jax.devices()[:8])
  features, labels, _, weight_logits, valid = _case(48, "padded", seed=7)
  logits = weight_logits[:, ::-1]
  rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  sharded = jax.device_put((logits, weight_logits, features, labels, valid), rows)

  def objective(contrastive, logits, weight_logits, features, labels, valid):
    return lcl_jax.lcl_objective(logits, weight_logits, features, labels, alpha=0.4,
                                temperature=0.2, valid=valid, contrastive=contrastive)[0]

  want = jax.value_and_grad(objective, argnums=(1, 2, 3))(
      api.Contrastive("dense"), logits, weight_logits, features, labels, valid)
  for contrastive in (api.Contrastive("ring", tile_size=4, mesh=mesh),
                      api.Contrastive("tiled", tile_size=7),
                      api.Contrastive("auto", auto_threshold=16, mesh=mesh)):
    got = jax.jit(jax.value_and_grad(objective, argnums=(1, 2, 3)),
                  static_argnums=0)(contrastive, *sharded)
    jax.tree.map(lambda g, w: _assert_close(g, w, contrastive.impl), got, want)


def test_choose_and_errors():
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=jax.devices()[:8])
  auto = api.Contrastive("auto", auto_threshold=96, mesh=mesh)
  assert [auto.choose(b) for b in (95, 96, 100)] == ["dense", "ring", "tiled"]  # 100 % 8 != 0
  assert api.Contrastive("ring").choose(8) == "tiled"  # no mesh: one device
  assert api.Contrastive("dense").choose(10**6) == "dense"
  with pytest.raises(ValueError, match="impl"):
    api.Contrastive("sparse")
  x, y = jnp.ones((12, 4)), jnp.zeros((12,), jnp.int32)
  with pytest.raises(ValueError, match="multiple of the 8 devices"):
    tiled_losses.supcon_loss(x, y, temperature=0.3, mesh=mesh)
  with pytest.raises(ValueError, match="tile_size"):
    tiled_losses.supcon_loss(x, y, temperature=0.3, tile_size=0)
  with pytest.raises(ValueError, match="axis_name"):
    tiled_losses.supcon_loss(x[:8], y[:8], temperature=0.3, mesh=mesh, axis_name="model")
  with pytest.raises(ValueError, match="labels"):  # the dense argument checks apply
    tiled_losses.lcl_loss(x, y[:5], jnp.ones((12, 3)), temperature=0.3)


def _largest_intermediate(jaxpr) -> int:
  largest = 0
  for eqn in jaxpr.eqns:
    for var in eqn.outvars:
      largest = max(largest, int(np.prod(getattr(var.aval, "shape", ()) or (1,))))
    for param in eqn.params.values():
      for sub in (param if isinstance(param, (tuple, list)) else (param,)):
        inner = getattr(sub, "jaxpr", None)
        if inner is not None:
          largest = max(largest, _largest_intermediate(getattr(inner, "jaxpr", inner)))
  return largest


def test_gradient_program_holds_no_batch_by_batch_array():
  """Memory O(B * tile): no array of the forward+backward program has B*B entries."""
  batch, tile = 512, 32
  features, labels, _, weight_logits, _ = _case(batch, "mixed", seed=1)
  grad = jax.grad(lambda x, w: tiled_losses.lcl_loss(x, labels, w, temperature=0.3,
                                                     tile_size=tile), argnums=(0, 1))
  largest = _largest_intermediate(jax.make_jaxpr(grad)(features, weight_logits).jaxpr)
  assert largest <= batch * tile * 2, largest
  dense_grad = jax.grad(lambda x, w: losses.lcl_loss(x, labels, w, temperature=0.3),
                        argnums=(0, 1))
  assert _largest_intermediate(jax.make_jaxpr(dense_grad)(features, weight_logits).jaxpr) \
      >= batch * batch  # the check would see a [B, B] array


def test_train_step_with_ring_on_8_devices_equals_dense_on_one(tiny_bert_dir):
  """The trainer's step (tiny BERT, LCL, jit path) with the ring contrastive term."""
  from lcl_jax.train import objectives, optim, parallel, steps

  spec = objectives.get_spec("lcl")
  modules, params = objectives.build_networks(
      spec, encoder=str(tiny_bert_dir), weighting_encoder=str(tiny_bert_dir), num_classes=C,
      rng=jax.random.key(0))
  optimizer = optim.make_optimizer(params, learning_rate=1e-3, total_steps=10)
  host_state = jax.device_get(steps.init_state(params, optimizer))
  rng = np.random.default_rng(0)
  rows, length = 24, 8
  labels = rng.integers(0, C, rows // 2).astype(np.int32)
  batch = {"input_ids": rng.integers(1000, 5000, (rows, length)).astype(np.int32),
           "attention_mask": np.ones((rows, length), np.int32),
           "token_type_ids": np.zeros((rows, length), np.int32),
           "labels": np.tile(labels, 2), "valid": np.arange(rows) < 22}

  def run(dp, contrastive):
    step = dp.compile_train_step(steps.make_train_step(
        spec, modules, optimizer, alpha=0.5, temperature=0.3, multilabel=False,
        dropout_key=jax.random.key(1), use_dropout=False, axis_name=dp.axis_name,
        contrastive=contrastive))
    state, metrics = step(dp.put_state(host_state), dp.put_batch(batch))
    return dp.fetch_scalars(metrics), jax.device_get(dp.host_state(state)["params"])

  want_metrics, want_params = run(parallel.JitDataParallel(jax.devices()[:1]), None)
  dp8 = parallel.JitDataParallel(jax.devices()[:8])
  got_metrics, got_params = run(dp8, api.Contrastive(
      "ring", tile_size=2, mesh=dp8.mesh, axis_name=parallel.DATA_AXIS))
  for name in ("loss", "contrastive", "grad_norm_primary", "grad_norm_weighting"):
    np.testing.assert_allclose(got_metrics[name], want_metrics[name], rtol=1e-5, err_msg=name)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               got_params, want_params)


@pytest.mark.parametrize("name", LOSSES)
def test_sum_reduction_tiled_and_ring_equal_dense(name):
  """reduction='sum' (seed 001's sum over anchors; issue 18 item 16): the tiled loss and
  the ring on 8 devices give the dense sum's value and gradients, and the Contrastive
  dispatch passes the option through."""
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=jax.devices()[:8])
  case = _case(40, "padded", seed=18)
  want_value, want_grads = _loss_and_grads(losses, name, case, reduction="sum")
  mean_value, _ = _loss_and_grads(losses, name, case)
  assert abs(float(want_value) - float(mean_value)) > 1e-3
  for kwargs in (dict(tile_size=3), dict(tile_size=3, mesh=mesh)):
    got_value, got_grads = _loss_and_grads(tiled_losses, name, case, reduction="sum", **kwargs)
    _assert_close(got_value, want_value, f"{name} {kwargs} value")
    for got, want in zip(got_grads, want_grads):
      _assert_close(got, want, f"{name} {kwargs} gradient")
  features, labels, label_sets, weight_logits, valid = case
  targets = label_sets if name.startswith("multilabel") else labels
  args = (features, targets, weight_logits) if name.endswith("lcl_loss") else (features, targets)
  for impl in ("tiled", "ring"):
    contrastive = api.Contrastive(impl, tile_size=5, mesh=mesh)
    _assert_close(getattr(contrastive, name)(*args, temperature=0.3, valid=valid,
                                             reduction="sum"), want_value, impl)
  with pytest.raises(ValueError, match="`reduction`"):
    getattr(tiled_losses, name)(*args, temperature=0.3, reduction="max")


# --------------------------------------------------------------------------------------
# The public losses: one function per loss, impl='auto' | 'dense' | 'tiled' | 'ring'.
# --------------------------------------------------------------------------------------


def _public(name):
  return getattr(lcl_jax, name)


@pytest.mark.parametrize("name", LOSSES)
def test_public_loss_every_impl_equals_dense(name):
  """Values and gradients (jit of grad) of the public loss with each impl equal the dense
  module's; the ring runs on 8 devices; reduction passes through."""
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=jax.devices()[:8])
  case = _case(40, "padded", seed=19)
  for reduction in ("mean", "sum"):
    want_value, want_grads = _loss_and_grads(losses, name, case, reduction=reduction)
    for kwargs in (dict(), dict(impl="dense"), dict(impl="tiled", tile_size=6),
                   dict(impl="ring", tile_size=3, mesh=mesh),
                   dict(impl="auto", mesh=mesh, axis_name="data")):
      what = f"{name} {reduction} {kwargs.get('impl', 'default')}"
      got_value, got_grads = _loss_and_grads(lcl_jax, name, case, reduction=reduction,
                                             **kwargs)
      _assert_close(got_value, want_value, what)
      for got, want in zip(got_grads, want_grads):
        _assert_close(got, want, what + " gradient")


def _args(name, batch, dim=4):
  x = jnp.asarray(np.random.default_rng(batch).normal(size=(batch, dim)), jnp.float32)
  targets = (jnp.eye(batch, C, dtype=jnp.int32) if name.startswith("multilabel")
             else jnp.arange(batch, dtype=jnp.int32) % C)
  return (x, targets, jnp.zeros((batch, C))) if name.endswith("lcl_loss") else (x, targets)


def test_auto_is_dense_below_the_threshold_and_tiled_at_it():
  """The rule at trace time, and the program of the default public loss: at
  AUTO_THRESHOLD rows no array of value_and_grad has B x B entries (below it, the dense
  one's does); at B = 65,536 the default program's largest array is ~B x tile."""
  threshold = api.AUTO_THRESHOLD
  assert [api.choose_impl("auto", b) for b in (threshold - 1, threshold, 65_536)] == \
      ["dense", "tiled", "tiled"]
  for name in LOSSES:
    for batch, bounded in ((threshold // 8, False), (threshold, True)):
      args = _args(name, batch)
      f = lambda x, *rest: _public(name)(x, *rest, temperature=0.3)
      largest = _largest_intermediate(jax.make_jaxpr(jax.value_and_grad(f))(*args).jaxpr)
      assert (largest < batch * batch) == bounded, (name, batch, largest)
  big = jax.ShapeDtypeStruct((65_536, 64), jnp.float32)
  labels = jax.ShapeDtypeStruct((65_536,), jnp.int32)
  logits = jax.ShapeDtypeStruct((65_536, 27), jnp.float32)
  grad = jax.grad(lambda x, w: lcl_jax.lcl_loss(x, labels_value, w, temperature=0.3),
                  argnums=(0, 1))
  labels_value = jnp.zeros(labels.shape, labels.dtype)
  largest = _largest_intermediate(jax.make_jaxpr(grad)(big, logits).jaxpr)
  assert largest <= 65_536 * api.DEFAULT_TILE_SIZE, largest


def test_auto_with_a_mesh_picks_the_ring_and_the_trainer_uses_the_same_rule():
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=jax.devices()[:8])
  one = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
  t = api.AUTO_THRESHOLD
  assert api.choose_impl("auto", t, mesh=mesh) == "ring"
  assert api.choose_impl("auto", t + 4, mesh=mesh) == "tiled"  # 8 does not divide B
  assert api.choose_impl("auto", t - 8, mesh=mesh) == "dense"
  assert api.choose_impl("auto", t, mesh=one) == "tiled"
  assert api.choose_impl("ring", 16, mesh=one) == "tiled"
  assert api.choose_impl("auto", 100, auto_threshold=96) == "tiled"
  for impl in api.IMPLEMENTATIONS:
    for batch in (t - 8, t, t + 4):
      trainer_choice = api.Contrastive(impl, mesh=mesh).choose(batch)
      assert trainer_choice == api.choose_impl(impl, batch, mesh=mesh)
  assert api.Contrastive is lcl_jax.losses.Contrastive
  from lcl_jax.train.config import TrainConfig
  assert TrainConfig().contrastive_auto_threshold == api.AUTO_THRESHOLD
  # The trainer builds its contrastive term from api.Contrastive (the one rule).
  import inspect

  from lcl_jax.train import trainer
  assert "losses_api.Contrastive(" in inspect.getsource(trainer._Loop._compile)


@pytest.mark.parametrize("kwargs,option", [
    (dict(impl="dense", tile_size=64), "`tile_size`"),
    (dict(impl="sparse"), "`impl`"),
    (dict(impl="ring"), "`mesh`"),
    (dict(impl="tiled", mesh="MESH"), "`mesh`"),
    (dict(impl="dense", mesh="MESH"), "`mesh`"),
    (dict(axis_name="data"), "`axis_name`"),
    (dict(impl="tiled", tile_size=0), "`tile_size`"),
    (dict(impl="ring", mesh="MESH", axis_name="model"), "`axis_name`"),
    (dict(impl="ring", mesh="MESH", batch=12), "multiple of the 8 devices"),
])
def test_public_loss_refuses_options_that_do_not_apply(kwargs, option):
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=jax.devices()[:8])
  kwargs = {k: (mesh if v == "MESH" else v) for k, v in kwargs.items()}
  batch = kwargs.pop("batch", 16)
  for name in LOSSES:
    with pytest.raises(ValueError, match=option):
      _public(name)(*_args(name, batch), temperature=0.3, **kwargs)


def test_public_tiled_and_ring_are_nan_for_a_traced_nonpositive_temperature():
  """As the dense losses: never a silently wrong finite number."""
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=jax.devices()[:8])
  for name in LOSSES:
    for kwargs in (dict(impl="dense"), dict(impl="tiled", tile_size=4),
                   dict(impl="ring", mesh=mesh)):
      f = jax.jit(lambda t, args: _public(name)(*args, temperature=t, **kwargs))
      args = _args(name, 16)
      assert np.isfinite(float(f(0.3, args)))
      assert np.isnan(float(f(-0.3, args))), (name, kwargs)


def test_tiled_loss_under_vmap_equals_each_run():
  """S runs vmapped (as the trainer's group step) through the symmetric tiled kernel:
  each run's value and feature/weight-logit gradients equal its own dense loss's."""
  cases = [_case(21, "padded", seed=s) for s in (1, 2)]
  stacked = [jnp.stack(parts) for parts in zip(*cases)]
  features, labels, _, weight_logits, valid = stacked

  def f(impl, x, y, w, v):
    return lcl_jax.lcl_loss(x, y, w, temperature=0.3, valid=v, impl=impl,
                            **({"tile_size": 4} if impl == "tiled" else {}))

  got = jax.jit(jax.vmap(jax.value_and_grad(lambda *a: f("tiled", *a), argnums=(0, 2))))(
      features, labels, weight_logits, valid)
  for index, case in enumerate(cases):
    x, y, _, w, v = case
    want = jax.value_and_grad(lambda x, w: f("dense", x, y, w, v), argnums=(0, 1))(x, w)
    jax.tree.map(lambda g, r: _assert_close(g[index], r, f"run {index}"), got, want)
