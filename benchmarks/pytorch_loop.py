"""The plain PyTorch + transformers loop of the parity benchmark, and `lockstep`.

No absl flags here, so tests (which import `experiments.train`'s flags) can import it:
`torch_loop(spec)` is the ~120-line fine-tuning loop over
`transformers.AutoModelForSequenceClassification` that `benchmarks/parity_benchmark.py`
runs in a child process; `lockstep(...)` runs the same batches through lcl_jax's CE step
and that loop from the same weights with dropout off (BUILD_NOTES "Parity with PyTorch").
"""
from __future__ import annotations

import statistics
import time



def recipe_adamw(model, learning_rate: float, total_steps: int):
  """The recipe's optimiser for a torch model: AdamW (eps 1e-6), weight decay 0.01 except
  on biases and LayerNorm, and the rate decaying linearly to 0 over `total_steps` without
  warm-up. Returns ``(optimizer, scheduler)``."""
  import torch  # pylint: disable=g-import-not-at-top
  from transformers import get_linear_schedule_with_warmup  # pylint: disable=g-import-not-at-top

  no_decay = lambda name: name.endswith("bias") or "LayerNorm" in name
  groups = [{"params": [p for n, p in model.named_parameters() if not no_decay(n)],
             "weight_decay": 0.01},
            {"params": [p for n, p in model.named_parameters() if no_decay(n)],
             "weight_decay": 0.0}]
  optimizer = torch.optim.AdamW(groups, lr=learning_rate, eps=1e-6)
  return optimizer, get_linear_schedule_with_warmup(optimizer, 0, total_steps)


def recipe_update(loss, parameters, optimizer, scheduler) -> None:
  """One update of the recipe: backward, clipping at global norm 1.0, AdamW, schedule."""
  import torch  # pylint: disable=g-import-not-at-top

  loss.backward()
  torch.nn.utils.clip_grad_norm_(parameters, 1.0)
  optimizer.step()
  scheduler.step()
  optimizer.zero_grad()


class _EvalData:
  """The recipe's splits tokenised by the checkpoint's tokenizer (dynamic padding), and
  accuracy / macro-F1 of a torch model on one of them."""

  def __init__(self, spec: dict, checkpoint: str):
    import numpy as np
    import torch
    from transformers import AutoTokenizer

    from lcl_jax import data as data_lib
    from lcl_jax.train import data_pipeline

    self.spec = spec
    self.splits = {s: data_lib.load_split(spec["dataset"], s, data_dir=spec["data_dir"])
                   for s in ("train", "validation", "test")}
    self.splits["train"] = data_pipeline.fixed_subset(self.splits["train"],
                                                      spec["max_train_examples"])
    self.num_labels = self.splits["train"].num_classes
    self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    self.encoded = {s: self.tokenizer(list(split.texts), truncation=True,
                                      max_length=spec["max_length"])
                    for s, split in self.splits.items()}
    self.labels = {s: torch.as_tensor(np.asarray(split.labels), dtype=torch.long)
                   for s, split in self.splits.items()}

  def batch(self, split: str, index) -> dict:
    rows = [{k: self.encoded[split][k][i] for k in _INPUTS} for i in index]
    padded = self.tokenizer.pad(rows, return_tensors="pt")  # to the longest row
    return {k: padded[k] for k in _INPUTS}

  def evaluate(self, model, logits_of, split: str) -> dict:
    import torch
    from sklearn.metrics import accuracy_score, f1_score

    model.eval()
    predictions, size = [], len(self.splits[split])
    with torch.no_grad():
      for start in range(0, size, self.spec["eval_batch_size"]):
        index = range(start, min(start + self.spec["eval_batch_size"], size))
        predictions.append(logits_of(self.batch(split, index)).argmax(-1))
    model.train()
    y_pred, y_true = torch.cat(predictions).numpy(), self.labels[split].numpy()
    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro"))}


_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _logits(out):
  return out.logits if hasattr(out, "logits") else out


def torch_loop(spec: dict) -> dict:
  """A plain fine-tuning loop; returns per-epoch metrics and timings (seconds)."""
  import torch
  from transformers import AutoModel, AutoModelForSequenceClassification

  from lcl_jax.models import pretrained

  torch.set_num_threads(1)
  torch.manual_seed(spec["seed"])
  checkpoint = str(pretrained.minilm_checkpoint_dir())
  data = _EvalData(spec, checkpoint)
  num_labels = data.num_labels

  if spec["head"] == "hf":
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=num_labels)
  else:  # the LCL release's head on the bare encoder (its pooler unused)
    class PaperHeadModel(torch.nn.Module):
      def __init__(self):
        super().__init__()
        self.bert = AutoModel.from_pretrained(checkpoint, add_pooling_layer=False)
        hidden = self.bert.config.hidden_size
        self.pooler_fc = torch.nn.Linear(hidden, hidden)
        self.label = torch.nn.Linear(hidden, num_labels)
        self.dropout = torch.nn.Dropout(0.1)
        for layer in (self.pooler_fc, self.label):
          torch.nn.init.normal_(layer.weight, std=0.02)
          torch.nn.init.zeros_(layer.bias)

      def forward(self, input_ids, attention_mask, token_type_ids):
        cls = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                        token_type_ids=token_type_ids).last_hidden_state[:, 0]
        x = torch.relu(self.dropout(self.pooler_fc(cls)))
        return self.dropout(self.label(x))
    model = PaperHeadModel()
  logits_of = lambda batch: _logits(model(**batch))

  n_train = len(data.splits["train"])
  per_epoch = -(-n_train // spec["texts_per_batch"])
  optimizer, scheduler = recipe_adamw(model, spec["learning_rate"], per_epoch * spec["epochs"])
  generator = torch.Generator().manual_seed(spec["seed"])
  history, step_seconds = [], []
  model.train()
  for epoch in range(spec["epochs"]):
    cpu0 = time.process_time()
    order = torch.randperm(n_train, generator=generator).tolist()
    for start in range(0, n_train, spec["texts_per_batch"]):
      t0 = time.perf_counter()
      index = order[start:start + spec["texts_per_batch"]]
      loss = torch.nn.functional.cross_entropy(logits_of(data.batch("train", index)),
                                               data.labels["train"][index])
      recipe_update(loss, model.parameters(), optimizer, scheduler)
      step_seconds.append(time.perf_counter() - t0)
    record = {"epoch": epoch + 1, "validation": data.evaluate(model, logits_of, "validation"),
              "test": data.evaluate(model, logits_of, "test"),
              "epoch_cpu_seconds": time.process_time() - cpu0}
    history.append(record)
  return {"history": history, "steps_per_epoch": per_epoch,
          "seconds_per_step": statistics.median(step_seconds[per_epoch:] or step_seconds)}


def contrastive_loop(spec: dict) -> dict:
  """SCL or LCL (``spec["objective"]``) in PyTorch + transformers on lcl_jax's batches.

  Φ is `AutoModelForSequenceClassification` (the checkpoint's head, as lcl_jax's
  ``--head=hf``) whose last-layer [CLS] state, L2-normalised, is the contrastive feature;
  for LCL, Ψ is the bare encoder with transformers' `ElectraClassificationHead` (what
  lcl_jax's weighting network is for a BERT checkpoint), trained jointly. Losses:
  SCL = α CE + (1 − α) SupCon; LCL = α (CE_Φ + CE_Ψ) + (1 − α) L_LCL with the release's
  `LCL.forward` (`torch_reference`). The batches are lcl_jax's own (`data_pipeline`, the
  same K texts + K WordNet views in the same order for the same seed), cut to their
  longest row. Returns every step's loss terms (nats), the median seconds a step and
  test accuracy / macro-F1 after the epochs.
  """
  import numpy as np
  import torch
  from transformers import AutoModel, AutoModelForSequenceClassification, ElectraConfig
  from transformers.models.electra.modeling_electra import ElectraClassificationHead

  from benchmarks import torch_reference
  from lcl_jax.models import pretrained
  from lcl_jax.train import data_pipeline
  from lcl_jax.train.config import TrainConfig

  torch.set_num_threads(1)
  torch.manual_seed(spec["seed"])
  checkpoint = str(pretrained.minilm_checkpoint_dir())
  cfg = TrainConfig(dataset=spec["dataset"], objective=spec["objective"], encoder="minilm",
                    head="hf", data_dir=spec["data_dir"], seed=spec["seed"],
                    texts_per_batch=spec["texts_per_batch"], max_length=spec["max_length"],
                    max_train_examples=spec["max_train_examples"], epochs=spec["epochs"],
                    learning_rate=spec["learning_rate"],
                    workdir=spec["output"] + ".workdir").resolved()
  batches = data_pipeline.prepare(cfg, num_devices=1)
  data = _EvalData(spec, checkpoint)
  phi = AutoModelForSequenceClassification.from_pretrained(checkpoint,
                                                           num_labels=data.num_labels)
  networks = torch.nn.ModuleDict({"phi": phi})
  if spec["objective"] == "lcl":
    class Weighting(torch.nn.Module):
      def __init__(self):
        super().__init__()
        self.encoder = AutoModel.from_pretrained(checkpoint, add_pooling_layer=False)
        config = ElectraConfig(hidden_size=self.encoder.config.hidden_size,
                               num_labels=data.num_labels, hidden_dropout_prob=0.1)
        self.head = ElectraClassificationHead(config)
        for layer in (self.head.dense, self.head.out_proj):
          torch.nn.init.normal_(layer.weight, std=0.02)
          torch.nn.init.zeros_(layer.bias)

      def forward(self, **inputs):
        return self.head(self.encoder(**inputs).last_hidden_state)
    networks["psi"] = Weighting()
  total_steps = batches.steps_per_epoch * spec["epochs"]
  optimizer, scheduler = recipe_adamw(networks, spec["learning_rate"], total_steps)
  alpha, tau = cfg.alpha, cfg.temperature
  steps, step_seconds = [], []
  networks.train()
  for epoch in range(spec["epochs"]):
    for batch in batches.train_batches(epoch):
      t0 = time.perf_counter()
      rows = np.flatnonzero(batch["valid"])
      length = int(batch["attention_mask"][rows].sum(1).max())
      inputs = {k: torch.as_tensor(batch[k][rows, :length]).long() for k in _INPUTS}
      labels = torch.as_tensor(batch["labels"][rows]).long()
      out = phi(**inputs, output_hidden_states=True)
      features = torch.nn.functional.normalize(out.hidden_states[-1][:, 0], dim=1)
      terms = {"ce": torch.nn.functional.cross_entropy(out.logits, labels)}
      if spec["objective"] == "scl":
        terms["contrastive"] = torch_reference.supcon_loss(features, labels, tau)
        loss = alpha * terms["ce"] + (1 - alpha) * terms["contrastive"]
      else:
        weight_logits = networks["psi"](**inputs)
        terms["weighting_ce"] = torch.nn.functional.cross_entropy(weight_logits, labels)
        terms["contrastive"] = torch_reference.release_lcl_loss(features, labels,
                                                                weight_logits, tau)
        loss = (alpha * (terms["ce"] + terms["weighting_ce"])
                + (1 - alpha) * terms["contrastive"])
      recipe_update(loss, networks.parameters(), optimizer, scheduler)
      step_seconds.append(time.perf_counter() - t0)
      steps.append({"step": len(steps) + 1, "loss": float(loss.detach()),
                    **{k: float(v.detach()) for k, v in terms.items()}})
  logits_of = lambda b: phi(**b).logits
  return {"steps": steps, "steps_per_epoch": batches.steps_per_epoch,
          "seconds_per_step": statistics.median(step_seconds[5:] or step_seconds),
          "history": [{"epoch": spec["epochs"],
                       "validation": data.evaluate(phi, logits_of, "validation"),
                       "test": data.evaluate(phi, logits_of, "test")}]}


def lockstep(checkpoint: str, batches: list[dict], num_labels: int, *, learning_rate: float,
             total_steps: int, seed: int = 0) -> dict:
  """The same CE training steps in lcl_jax (`--head=hf`) and in the PyTorch loop.

  Both start from the same weights (the checkpoint; lcl_jax's new classifier layer copied
  into `BertForSequenceClassification`), take the same `batches` (data-pipeline dicts,
  all rows valid) with dropout off in both, and the recipe's AdamW (eps 1e-6, decay 0.01
  except biases/LayerNorm, clip 1.0, linear decay over `total_steps`). Any difference in
  the model, the loss, the optimiser, the decay mask, clipping or the schedule shows up
  as diverging losses. Returns the per-step losses of both, their largest relative
  difference and the largest absolute difference of the classifier and first-layer query
  weights at the end. Seed, order and dropout masks are the only things it leaves out.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  from lcl_jax.train import objectives, optim, steps  # pylint: disable=g-import-not-at-top

  spec = objectives.get_spec("ce")
  modules, params = objectives.build_networks(
      spec, encoder=checkpoint, weighting_encoder=checkpoint, num_classes=num_labels,
      rng=jax.random.key(seed), primary_head="hf")
  optimizer = optim.make_optimizer(params, learning_rate=learning_rate,
                                   total_steps=total_steps, eps=1e-6)
  train_step = jax.jit(steps.make_train_step(
      spec, modules, optimizer, alpha=0.5, temperature=0.3, multilabel=False,
      dropout_key=jax.random.key(seed), use_dropout=False))
  state = steps.init_state(params, optimizer, None)

  model = transformers.BertForSequenceClassification.from_pretrained(checkpoint,
                                                                     num_labels=num_labels)
  head = params["primary"]["head"]["classifier"]
  with torch.no_grad():
    model.classifier.weight.copy_(torch.tensor(np.array(head["kernel"]).T))
    model.classifier.bias.copy_(torch.tensor(np.array(head["bias"])))
  model.eval()  # dropout off; gradients flow as usual
  torch_optimizer, scheduler = recipe_adamw(model, learning_rate, total_steps)
  ours, theirs = [], []
  for batch in batches:
    if not np.all(batch["valid"]):
      raise ValueError("lockstep needs batches without padding rows")
    state, metrics = train_step(state, batch)
    ours.append(float(metrics["loss"]))
    logits = model(input_ids=torch.tensor(batch["input_ids"]).long(),
                   attention_mask=torch.tensor(batch["attention_mask"]).long(),
                   token_type_ids=torch.tensor(batch["token_type_ids"]).long()).logits
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(batch["labels"]).long())
    recipe_update(loss, model.parameters(), torch_optimizer, scheduler)
    theirs.append(float(loss.detach()))
  final = state["params"]["primary"]
  query = final["encoder"]["encoder"]["layer"]["0"]["attention"]["self"]["query"]["kernel"]
  diffs = {
      "classifier": float(np.abs(np.asarray(final["head"]["classifier"]["kernel"])
                                 - model.classifier.weight.detach().numpy().T).max()),
      "layer0_query": float(np.abs(np.asarray(query) - model.bert.encoder.layer[0]
                                   .attention.self.query.weight.detach().numpy().T).max()),
  }
  relative = max(abs(a - b) / abs(b) for a, b in zip(ours, theirs))
  return {"losses_lcl_jax": ours, "losses_torch": theirs, "max_relative_loss_difference": relative,
          "max_abs_param_difference": diffs}
