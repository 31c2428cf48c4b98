"""Issue 10 items 1-2 (seed 004, Wang & Feng): the coarse GoEmotions labelings, the
auxiliary head and its T-weighted loss, and the NMI task similarity (Eq. 2-7, Table 3).

References are independent of the code under test: a hand-built table of the release's
mapping files, hand-computed entropies, scikit-learn / SciPy for the information
measures, a NumPy transcription of the BCE terms.
"""
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from lcl_jax.data import files, goemotions
from lcl_jax.studies import task_similarity as ts
from lcl_jax import inference
from lcl_jax.train import objectives, trainer
from lcl_jax.train.config import TrainConfig

E = goemotions.EMOTIONS


def _multi_hot(*label_sets):
  out = np.zeros((len(label_sets), len(E)), np.int32)
  for i, names in enumerate(label_sets):
    out[i, [E.index(n) for n in names]] = 1
  return out


# --- coarse labelings --------------------------------------------------------------------

def test_coarse_labels_equal_a_hand_built_table(data_dir):
  assert goemotions.coarse_label_names("sentiment", data_dir) == (
      "positive", "negative", "ambiguous", "neutral")
  assert goemotions.coarse_label_names("ekman", data_dir) == (
      "anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral")
  rows = _multi_hot(["grief"], ["surprise"], ["neutral"], ["joy", "anger"],
                    ["remorse", "nervousness", "curiosity"], ["grief", "sadness"])
  #                         pos neg amb neu
  sentiment = np.array([[0, 1, 0, 0],
                        [0, 0, 1, 0],
                        [0, 0, 0, 1],
                        [1, 1, 0, 0],
                        [0, 1, 1, 0],
                        [0, 1, 0, 0]])
  #                     ang dis fea joy sad sur neu
  ekman = np.array([[0, 0, 0, 0, 1, 0, 0],
                    [0, 0, 0, 0, 0, 1, 0],
                    [0, 0, 0, 0, 0, 0, 1],
                    [1, 0, 0, 1, 0, 0, 0],
                    [0, 0, 1, 0, 1, 1, 0],
                    [0, 0, 0, 0, 1, 0, 0]])
  got_s = goemotions.coarse_labels(rows, "sentiment", data_dir)
  got_e = goemotions.coarse_labels(rows, "ekman", data_dir)
  assert got_s.dtype == got_e.dtype == np.int32
  np.testing.assert_array_equal(got_s, sentiment)
  np.testing.assert_array_equal(got_e, ekman)


def test_a_bad_mapping_file_is_named(tmp_path, data_dir):
  folder = tmp_path / "goemotions"
  folder.mkdir()
  groups = json.loads((data_dir / "goemotions" / "ekman_mapping.json").read_text())
  groups["joy"].remove("pride")
  (folder / "ekman_mapping.json").write_text(json.dumps(groups))
  with pytest.raises(files.MalformedRowError, match=r"ekman_mapping.json.*'pride'"):
    goemotions.coarse_label_names("ekman", tmp_path)
  with pytest.raises(files.DataFileNotFoundError, match="sentiment_dict.json"):
    goemotions.coarse_labels(_multi_hot(["joy"]), "sentiment", tmp_path)
  with pytest.raises(ValueError, match=r"\[N, 28\]"):
    goemotions.coarse_labels(np.zeros((2, 27), np.int32), "ekman", data_dir)


# --- NMI (Eq. 2-7) -----------------------------------------------------------------------

def test_nmi_on_hand_computed_tables():
  # Single label: table [[2, 0], [1, 1]], c = 4.
  a, b = np.array([0, 0, 1, 1]), np.array([0, 0, 0, 1])
  np.testing.assert_array_equal(ts.contingency_table(a, b), [[2, 0], [1, 1]])
  h_joint = -(0.5 * math.log2(0.5) + 2 * 0.25 * math.log2(0.25))  # 1.5
  h_b = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
  mi = 1.0 + h_b - h_joint
  assert ts.entropy_bits(a) == pytest.approx(1.0)
  assert ts.entropy_bits(b) == pytest.approx(h_b)
  assert ts.joint_entropy_bits(a, b) == pytest.approx(1.5)
  assert ts.mutual_information_bits(a, b) == pytest.approx(mi)
  assert ts.nmi(a, b) == pytest.approx(mi / 1.5)
  assert ts.nmi(a, b, normalization="max") == pytest.approx(mi / 1.0)
  # The document's Section 5.1 example: an example with labels {1, 2} and one with {1};
  # each (example, label, label) triple is one count: c = 3.
  a_multi = np.array([[1, 1], [1, 0]])
  b_multi = np.array([[1, 0], [0, 1]])
  np.testing.assert_array_equal(ts.contingency_table(a_multi, b_multi), [[1, 1], [1, 0]])
  eq7 = (math.log2(1 * 3 / (2 * 2)) + 2 * math.log2(1 * 3 / (2 * 1))) / 3
  assert ts.mutual_information_bits(a_multi, b_multi) == pytest.approx(eq7)
  assert ts.nmi(a_multi, b_multi) == pytest.approx(eq7 / math.log2(3))
  h_margin = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))
  assert ts.nmi(a_multi, b_multi, normalization="max") == pytest.approx(eq7 / h_margin)
  with pytest.raises(ValueError, match="normalization"):
    ts.nmi(a, b, normalization="sqrt")
  with pytest.raises(ValueError, match="same examples"):
    ts.contingency_table(a, b[:3])


def test_self_information_independence_and_constants():
  rng = np.random.default_rng(0)
  x = rng.integers(0, 5, 200)
  assert ts.mutual_information_bits(x, x) == pytest.approx(ts.entropy_bits(x))
  assert ts.nmi(x, x) == pytest.approx(1.0) and ts.nmi(x, x, normalization="max") == \
      pytest.approx(1.0)
  # Every (x, y) pair exactly once: p(x, y) = p(x) p(y).
  a, b = np.repeat(np.arange(3), 4), np.tile(np.arange(4), 3)
  assert ts.mutual_information_bits(a, b) == 0.0
  assert ts.nmi(a, b) == 0.0 and ts.nmi(a, b, normalization="max") == 0.0
  assert ts.joint_entropy_bits(a, b) == pytest.approx(math.log2(12))
  assert ts.nmi(np.zeros(5, int), np.zeros(5, int)) == 1.0  # scikit-learn's convention


def test_information_measures_equal_scikit_learn_and_scipy():
  rng = np.random.default_rng(1)
  a, b = rng.integers(0, 6, 300), rng.integers(0, 4, 300)
  b = np.where(rng.random(300) < 0.5, a % 4, b)  # dependent
  assert ts.mutual_information_bits(a, b) == pytest.approx(
      skm.mutual_info_score(a, b) / math.log(2), rel=1e-12)
  assert ts.nmi(a, b, normalization="max") == pytest.approx(
      skm.normalized_mutual_info_score(a, b, average_method="max"), rel=1e-12)
  assert ts.entropy_bits(a) == pytest.approx(stats.entropy(np.bincount(a), base=2))
  # Multi-label: the same as scikit-learn on the expanded (label x, label y) pairs.
  multi_a = (rng.random((80, 5)) < 0.3).astype(int)
  multi_b = (rng.random((80, 3)) < 0.4).astype(int)
  multi_b[:, 0] |= multi_a[:, 0]
  xs, ys = zip(*[(x, y) for e in range(80) for x in np.flatnonzero(multi_a[e])
                 for y in np.flatnonzero(multi_b[e])])
  assert ts.mutual_information_bits(multi_a, multi_b) == pytest.approx(
      skm.mutual_info_score(xs, ys) / math.log(2), rel=1e-12)
  assert ts.joint_entropy_bits(multi_a, multi_b) == pytest.approx(
      stats.entropy(np.unique(np.stack([xs, ys]), axis=1, return_counts=True)[1], base=2))


def test_table3_rows_on_the_release(data_dir):
  rows = ts.task_similarity_rows(data_dir)
  assert [(r["auxiliary"], r["split"]) for r in rows] == [
      (t, s) for t in ("sentiment", "ekman") for s in ("train", "validation", "test")]
  assert rows[0]["document_nmi_joint"] == 3.44e-17 and rows[4]["document_nmi_joint"] == 0.00833
  assert [r["examples"] for r in rows[:3]] == [43410, 5426, 5427]
  for r in rows:
    assert 0.0 < r["nmi_joint"] <= r["nmi_max"] <= 1.0
    assert r["mutual_information_bits"] <= min(r["entropy_a_bits"], r["entropy_b_bits"]) + 1e-12
  # On examples with one label the coarse task is a function of the main one:
  # I = H(coarse), so NMI_max = H(coarse) / H(main).
  from lcl_jax import data as data_lib
  labels = np.asarray(data_lib.load_split("goemotions_multilabel", "validation",
                                          data_dir=data_dir).labels)
  single = labels[labels.sum(axis=1) == 1]
  coarse = goemotions.coarse_labels(single, "ekman", data_dir)
  assert ts.mutual_information_bits(single, coarse) == pytest.approx(ts.entropy_bits(coarse))
  assert "| Aux (senti) |" in ts.table3_markdown(rows)


# --- T schedule and the loss ---------------------------------------------------------------

@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_t_schedule_starts_and_ends_where_configured(schedule):
  n = 9
  weight = jax.jit(objectives.aux_weight_schedule(0.8, 1.0, n, schedule))
  values = np.array([float(weight(jnp.int32(s))) for s in range(n + 3)])
  assert values[0] == np.float32(0.8) and values[n - 1] == 1.0 and (values[n:] == 1.0).all()
  assert (np.diff(values) >= 0).all()
  f = 2 / (n - 1)
  expected = f if schedule == "linear" else (1 - math.cos(math.pi * f)) / 2
  assert values[2] == pytest.approx(0.8 + 0.2 * expected, abs=1e-6)
  assert float(objectives.aux_weight(0, start=0.3, end=0.6, total_steps=1)) == \
      pytest.approx(0.3)
  with pytest.raises(ValueError, match="total_steps"):
    objectives.aux_weight_schedule(0.8, 1.0, 0)


def _bce_numpy(logits, targets, valid):
  x = np.asarray(logits, np.float64)
  p = 1 / (1 + np.exp(-x))
  per_row = -np.mean(targets * np.log(p) + (1 - targets) * np.log(1 - p), axis=1)
  return per_row[valid].mean()


@pytest.mark.parametrize("objective", ["ce", "bert_ce", "scl", "lcl"])
def test_loss_is_the_t_weighted_sum_of_main_and_aux_bce(objective):
  rng = np.random.default_rng(2)
  rows, classes, groups = 6, 28, 7
  outputs = {"logits": jnp.asarray(rng.normal(size=(rows, classes)), jnp.float32),
             "weight_logits": jnp.asarray(rng.normal(size=(rows, classes)), jnp.float32),
             "features": jnp.asarray(rng.normal(size=(rows, 16)), jnp.float32),
             "aux_logits": jnp.asarray(rng.normal(size=(rows, groups)), jnp.float32)}
  labels = (rng.random((rows, classes)) < 0.2).astype(np.int32)
  labels[:, 0] = 1
  aux_labels = (rng.random((rows, groups)) < 0.3).astype(np.int32)
  valid = np.array([True] * 5 + [False])
  spec = objectives.get_spec(objective)
  kwargs = dict(alpha=0.5, temperature=0.3, multilabel=True)
  total, parts = objectives.loss_from_outputs(spec, outputs, labels, valid,
                                              aux_labels=aux_labels, aux_weight=0.85, **kwargs)
  aux = _bce_numpy(outputs["aux_logits"], aux_labels, valid)
  if spec.loss == "ce":
    main = _bce_numpy(outputs["logits"], labels, valid)
  else:  # the objective's own loss (tested against NumPy in test_losses)
    main = float(objectives.loss_from_outputs(spec, outputs, labels, valid, **kwargs)[0])
  assert float(parts["aux_loss"]) == pytest.approx(aux, rel=1e-5)
  assert float(parts["main_loss"]) == pytest.approx(main, rel=1e-5)
  assert float(total) == pytest.approx(0.85 * main + 0.15 * aux, rel=1e-5)
  with pytest.raises(ValueError, match="aux_logits"):
    objectives.loss_from_outputs(spec, {k: v for k, v in outputs.items() if k != "aux_logits"},
                                 labels, valid, aux_labels=aux_labels, aux_weight=0.8, **kwargs)


def test_aux_head_shares_the_encoder(tiny_bert_dir):
  """Hard parameter sharing: one encoder, a second head of the main head's kind (BERT's:
  its pre-trained pooler copied from the main head's). Shapes by tracing only."""
  from lcl_jax import models
  module, params = models.build_classifier("bert", tiny_bert_dir, 28, rng=jax.random.key(0),
                                           num_aux_classes=7)
  assert sorted(params) == ["aux_head", "encoder", "head"]
  jax.tree.map(np.testing.assert_array_equal, params["aux_head"]["pooler"],
               params["head"]["pooler"])
  assert params["aux_head"]["classifier"]["kernel"].shape == (32, 7)
  ids = jnp.array([[101, 7592, 2088, 102]], jnp.int32)
  mask = jnp.ones_like(ids)
  out = jax.eval_shape(lambda p: module.apply({"params": p}, ids, mask), params)
  assert out.logits.shape == (1, 28) and out.aux_logits.shape == (1, 7)
  without = jax.eval_shape(lambda p: module.clone(num_aux_classes=0).apply(
      {"params": {k: v for k, v in p.items() if k != "aux_head"}}, ids, mask), params)
  assert without.aux_logits is None


# --- one tiny run ----------------------------------------------------------------------------

def test_tiny_run_with_aux_task_writes_aux_results_and_predicts(tiny_bert_dir, data_dir,
                                                               tmp_path):
  """3 steps of BCE + the Ekman head on real GoEmotions rows: T per step from the state's
  step count (0.8, 0.9, 1.0), aux metrics = scikit-learn's on the saved aux predictions,
  main results free of aux keys, the run loadable by the Predictor (main logits, the
  probabilities the trainer saved). (`--export_hf` writes the main head only; checked by
  hand, see BUILD_NOTES, not here: it costs another compile.)"""
  run = tmp_path / "aux"
  cfg = TrainConfig(dataset="goemotions_multilabel", objective="ce", encoder=str(tiny_bert_dir),
                    data_dir=str(data_dir), workdir=str(run), seed=3, epochs=1,
                    max_train_examples=24, max_eval_examples=16, texts_per_batch=8,
                    eval_batch_size=16, max_length=32, length_buckets=(32,),
                    learning_rate=1e-3, log_every_steps=1, progress_bar=False,
                    baseline_views="texts", thresholds=0.3, aux_task="ekman")
  results = trainer.train(cfg)
  aux = results["aux"]
  assert aux["task"] == "ekman" and len(aux["label_names"]) == 7 and aux["threshold"] == 0.3
  assert "aux" not in results["validation"] and "macro_f1" in results["validation"]
  records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
  weights = [r["aux_weight"] for r in records if r.get("kind") == "train"]
  np.testing.assert_allclose(weights, [0.8, 0.9, 1.0], rtol=1e-6)
  arrays = np.load(run / "predictions" / "best_test.npz")
  coarse = goemotions.coarse_labels(arrays["labels"], "ekman", data_dir)
  np.testing.assert_array_equal(arrays["aux_labels"], coarse)
  np.testing.assert_array_equal(arrays["aux_predictions"], arrays["aux_probabilities"] >= 0.3)
  assert aux["test"]["macro_f1"] == pytest.approx(skm.f1_score(
      coarse, arrays["aux_predictions"], average="macro", zero_division=0))
  from lcl_jax import data as data_lib
  from lcl_jax.train.data_pipeline import fixed_subset
  test = fixed_subset(data_lib.load_split("goemotions_multilabel", "test", data_dir=data_dir), 16)
  probs = inference.Predictor.load(run).probabilities(list(test.texts))["primary"]
  np.testing.assert_allclose(probs, arrays["probabilities"], rtol=1e-5, atol=1e-6)
