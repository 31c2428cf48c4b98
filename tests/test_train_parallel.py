"""Data parallelism: the sharded-jit and pmap steps equal a single-device step.

Both run on 8 virtual CPU devices (tests/conftest.py sets XLA_FLAGS) on the same global
batch, with dropout off so that the three computations are mathematically identical;
the contrastive terms couple every row with every other, so a step that saw only its
local rows would give a different loss and different gradients.
"""
import jax
import numpy as np
import pytest

from lcl_jax.train import objectives, optim, parallel, steps

NUM_CLASSES = 4


def _global_batch(rows=24, valid_rows=20, length=16, seed=0):
  rng = np.random.default_rng(seed)
  lengths = rng.integers(3, length + 1, size=rows)
  input_ids = rng.integers(1000, 5000, size=(rows, length)).astype(np.int32)
  input_ids[:, 0] = 101
  attention_mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int32)
  input_ids = input_ids * attention_mask
  k = valid_rows // 2
  labels = rng.integers(0, NUM_CLASSES, size=rows).astype(np.int32)
  labels[k:2 * k] = labels[:k]  # row i and row i + K are views of one example
  valid = np.arange(rows) < valid_rows
  aux_labels = (rng.random((rows, 3)) < 0.4).astype(np.int32)  # issue 10's auxiliary head
  aux_labels[k:2 * k] = aux_labels[:k]
  return {"input_ids": input_ids, "attention_mask": attention_mask,
          "token_type_ids": np.zeros_like(input_ids), "labels": labels, "valid": valid,
          "example_index": np.where(valid, np.arange(rows) % k, -1).astype(np.int32),
          "aux_labels": aux_labels}


@pytest.mark.parametrize("objective", ["lcl"])
def test_jit_and_pmap_on_8_devices_equal_single_device(tiny_bert_dir, objective):
  assert len(jax.devices()) >= 8, "conftest must provide 8 CPU devices"
  spec = objectives.get_spec(objective)
  modules, params = objectives.build_networks(
      spec, encoder=str(tiny_bert_dir), weighting_encoder=str(tiny_bert_dir),
      num_classes=NUM_CLASSES, rng=jax.random.key(0), num_aux_classes=3)
  optimizer = optim.make_optimizer(params, learning_rate=1e-3, total_steps=10)
  host_state = jax.device_get(steps.init_state(params, optimizer))
  batches = [_global_batch(seed=s) for s in (0, 1)]

  def run(dp):
    step_fn = dp.compile_train_step(steps.make_train_step(
        spec, modules, optimizer, alpha=0.5, temperature=0.3, multilabel=False,
        dropout_key=jax.random.key(1), use_dropout=False, axis_name=dp.axis_name,
        aux_weight=objectives.aux_weight_schedule(0.8, 1.0, 2)))
    state = dp.put_state(host_state)
    step_metrics = []
    for batch in batches:
      state, m = step_fn(state, dp.put_batch(batch))
      step_metrics.append({k: float(v) for k, v in dp.fetch_scalars(m).items()})
    return step_metrics, jax.device_get(dp.host_state(state)["params"])

  single_metrics, single_params = run(parallel.JitDataParallel(jax.devices()[:1]))
  assert {"loss", "grad_norm_primary", "aux_loss"} <= set(single_metrics[0])
  assert [m["aux_weight"] for m in single_metrics] == [np.float32(0.8), 1.0]
  for dp in (parallel.JitDataParallel(jax.devices()[:8]),
             parallel.PmapDataParallel(jax.devices()[:8])):
    metrics8, params8 = run(dp)
    # Loss components and per-network gradient norms (Adam alone is almost invariant to
    # the gradient's scale, so the norms are what catch a psum-for-pmean mistake).
    for got, want in zip(metrics8, single_metrics):
      assert got.keys() == want.keys()
      for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-7,
                                   err_msg=f"{dp.name}: {name}")
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6,
                                                         err_msg=dp.name),
                 params8, single_params)
  # The step did something: parameters moved.
  moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), single_params,
                       host_state["params"])
  assert max(jax.tree.leaves(moved)) > 1e-5
