"""The SCL baseline's training path, end to end, against independent references.

One real training batch of the trainer's data pipeline (synthetic texts + their
augmented views, with padding rows), the trainer's own jitted train step, and:

* features and logits recomputed by transformers' PyTorch ``BertModel`` (+ the head in
  torch from the same weights), not by our Flax modules;
* the objective transcribed in float64 NumPy from Gunel et al. (2021) / the paper's
  Eq. 2: ``alpha * CE + (1 - alpha) * SupCon(tau)`` over the valid rows, each row's
  augmented view among its positives;
* the gradient of every parameter: d(objective)/d(features, logits) by central finite
  differences of that NumPy transcription, pulled back through the PyTorch model by
  autograd, against the gradient the train step computed (which a recording
  "optimiser" hands back untouched).

alpha = 0.3 (not 0.5) so that swapping the weights of the two terms would fail.
"""
from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lcl_jax.models import convert
from lcl_jax.train import data_pipeline, objectives, steps
from lcl_jax.train.config import TrainConfig

ALPHA, TAU = 0.3, 0.2
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _np_ce(logits, labels, valid):
  z = logits - logits.max(axis=1, keepdims=True)
  log_softmax = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
  return -log_softmax[np.arange(len(labels)), labels][valid].mean()


def _np_supcon(features, labels, valid, tau):
  """Eq. 2 (Khosla et al. 2020; Gunel et al. 2021), one anchor at a time."""
  rows = np.flatnonzero(valid)
  h = features / np.linalg.norm(features, axis=1, keepdims=True)
  per_anchor = []
  for i in rows:
    others = [k for k in rows if k != i]
    positives = [p for p in others if labels[p] == labels[i]]
    if not positives:
      continue
    log_denominator = np.log(sum(np.exp(h[i] @ h[k] / tau) for k in others))
    per_anchor.append(-np.mean([h[i] @ h[p] / tau - log_denominator for p in positives]))
  return float(np.mean(per_anchor))


def _np_objective(features, logits, labels, valid):
  ce = _np_ce(logits, labels, valid)
  contrastive = _np_supcon(features, labels, valid, TAU)
  return ALPHA * ce + (1 - ALPHA) * contrastive, ce, contrastive


def _finite_difference(fn, x, eps=1e-6):
  grad = np.zeros_like(x)
  for index in np.ndindex(x.shape):
    up, down = x.copy(), x.copy()
    up[index] += eps
    down[index] -= eps
    grad[index] = (fn(up) - fn(down)) / (2 * eps)
  return grad


def _recording_optimizer() -> optax.GradientTransformation:
  """Leaves the parameters unchanged and keeps the last gradient as its state."""
  return optax.GradientTransformation(
      init=lambda params: jax.tree.map(jnp.zeros_like, params),
      update=lambda grads, state, params=None: (jax.tree.map(jnp.zeros_like, grads), grads))


def test_scl_train_step_matches_numpy_objective_and_torch_gradients(tiny_bert_dir, tmp_path):
  import torch
  import transformers

  cfg = TrainConfig(dataset="synthetic", objective="scl", encoder=str(tiny_bert_dir),
                    workdir=str(tmp_path), seed=0, max_train_examples=14, texts_per_batch=10,
                    max_length=32, length_buckets=(32,), alpha=ALPHA,
                    temperature=TAU).resolved()
  data = data_pipeline.prepare(cfg, num_devices=1)
  batches = list(data.train_batches(0))
  assert len(batches) == 2
  batch = batches[1]  # 4 texts + their 4 views + 12 padding rows
  valid, labels, index = batch["valid"], batch["labels"], batch["example_index"]
  assert valid.shape == (20,) and valid.sum() == 8
  np.testing.assert_array_equal(index[~valid], -1)
  train = data.splits["train"]
  np.testing.assert_array_equal(labels[valid], np.asarray(train.labels)[index[valid]])
  # Every text is in the batch twice (itself and its view), and the views differ.
  texts, counts = np.unique(index[valid], return_counts=True)
  assert len(texts) == 4 and (counts == 2).all()
  assert any((batch["input_ids"][a] != batch["input_ids"][b]).any()
             for t in texts for a, b in [np.flatnonzero(valid & (index == t))])

  spec = objectives.get_spec("scl")
  modules, params = objectives.build_networks(
      spec, encoder=str(tiny_bert_dir), weighting_encoder=str(tiny_bert_dir),
      num_classes=data.num_classes, rng=jax.random.key(0))
  optimizer = _recording_optimizer()
  train_step = jax.jit(steps.make_train_step(
      spec, modules, optimizer, alpha=cfg.alpha, temperature=cfg.temperature,
      multilabel=False, dropout_key=jax.random.key(1), use_dropout=False))
  state, metrics = train_step(steps.init_state(params, optimizer),
                              {k: jnp.asarray(v) for k, v in batch.items()})
  grads = jax.device_get(state["opt_state"])["primary"]

  # Independent forward: transformers' PyTorch BERT (same checkpoint) + the head in torch.
  bert = transformers.BertModel.from_pretrained(tiny_bert_dir, add_pooling_layer=False).eval()
  head = {name: torch.tensor(value, dtype=torch.float32, requires_grad=True)
          for name, value in convert.to_hf_state_dict(params["primary"]["head"]).items()}
  cls = bert(input_ids=torch.tensor(batch["input_ids"], dtype=torch.long),
             attention_mask=torch.tensor(batch["attention_mask"], dtype=torch.long),
             token_type_ids=torch.tensor(batch["token_type_ids"], dtype=torch.long)
             ).last_hidden_state[:, 0]
  hidden = torch.relu(cls @ head["pooler_fc.weight"].T + head["pooler_fc.bias"])
  logits = hidden @ head["label.weight"].T + head["label.bias"]
  features_np = cls.detach().double().numpy()
  logits_np = logits.detach().double().numpy()

  total, ce, contrastive = _np_objective(features_np, logits_np, labels, valid)
  assert float(metrics["ce"]) == pytest.approx(ce, rel=1e-4)
  assert float(metrics["contrastive"]) == pytest.approx(contrastive, rel=1e-4)
  assert float(metrics["loss"]) == pytest.approx(total, rel=1e-4)
  # Padding rows take part in nothing: their features and logits get no gradient.
  d_features = _finite_difference(
      lambda f: _np_objective(f, logits_np, labels, valid)[0], features_np)
  d_logits = _finite_difference(
      lambda z: _np_objective(features_np, z, labels, valid)[0], logits_np)
  assert not d_features[~valid].any() and not d_logits[~valid].any()

  torch.autograd.backward([cls, logits], [torch.tensor(d_features, dtype=torch.float32),
                                          torch.tensor(d_logits, dtype=torch.float32)])
  reference = {name: p.grad.numpy() for name, p in bert.named_parameters() if p.grad is not None}
  reference.update({name: p.grad.numpy() for name, p in head.items()})
  ours = convert.to_hf_state_dict(grads["encoder"])
  ours.update(convert.to_hf_state_dict(grads["head"]))
  assert set(reference) <= set(ours)
  for name, expected in reference.items():
    scale = np.abs(expected).max() + 1e-8
    np.testing.assert_allclose(ours[name], expected, atol=2e-3 * scale, err_msg=name)
  global_norm = np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in ours.values()))
  assert float(metrics["grad_norm_primary"]) == pytest.approx(global_norm, rel=1e-4)
  assert float(metrics["grad_norm_primary"]) == pytest.approx(
      np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in reference.values())),
      rel=2e-3)


def test_train_binary_prints_the_scl_note_under_scl_results_only():
  import json
  import subprocess
  import sys

  row = {"dataset": "synthetic", "encoder": "minilm", "seed": 0, "multilabel": False,
         "selection_metric": "accuracy", "best_epoch": 1, "validation": {"accuracy": 0.5},
         "test": {"accuracy": 0.5, "weighted_f1": 0.5, "macro_f1": 0.5}}
  script = ("import json, sys; import experiments.train as t; rows = json.loads(sys.argv[1]); "
            "print(t.format_results_table(rows)); print('NOTE=' + t.SCL_NOTE)")

  def table(objectives):
    rows = [dict(row, objective=o) for o in objectives]
    out = subprocess.run([sys.executable, "-c", script, json.dumps(rows)], check=True,
                         capture_output=True, text=True, cwd=ROOT).stdout
    body, note = out.rsplit("NOTE=", 1)
    return body, note.strip()

  body, note = table(["ce", "scl", "lcl"])
  assert "SCL vs CE" in note and body.rstrip().endswith(note)
  body, note = table(["ce", "lcl"])
  assert note not in body
