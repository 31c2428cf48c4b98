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


def torch_loop(spec: dict) -> dict:
  """A plain fine-tuning loop; returns per-epoch metrics and timings (seconds)."""
  import numpy as np
  import torch
  from sklearn.metrics import accuracy_score, f1_score
  from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

  from lcl_jax import data as data_lib
  from lcl_jax.models import pretrained
  from lcl_jax.train import data_pipeline

  torch.set_num_threads(1)
  torch.manual_seed(spec["seed"])
  checkpoint = str(pretrained.minilm_checkpoint_dir())
  splits = {s: data_lib.load_split(spec["dataset"], s, data_dir=spec["data_dir"])
            for s in ("train", "validation", "test")}
  splits["train"] = data_pipeline.fixed_subset(splits["train"], spec["max_train_examples"])
  num_labels = splits["train"].num_classes
  tokenizer = AutoTokenizer.from_pretrained(checkpoint)
  encoded = {s: tokenizer(list(split.texts), truncation=True, max_length=spec["max_length"])
             for s, split in splits.items()}

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

  def logits_of(batch):
    out = model(**batch)
    return out.logits if hasattr(out, "logits") else out

  def batch_of(split, index):
    rows = [{k: encoded[split][k][i] for k in ("input_ids", "attention_mask", "token_type_ids")}
            for i in index]
    padded = tokenizer.pad(rows, return_tensors="pt")  # dynamic padding to the longest row
    return {k: padded[k] for k in ("input_ids", "attention_mask", "token_type_ids")}

  n_train = len(splits["train"])
  per_epoch = -(-n_train // spec["texts_per_batch"])
  optimizer, scheduler = recipe_adamw(model, spec["learning_rate"], per_epoch * spec["epochs"])
  labels = {s: torch.as_tensor(np.asarray(split.labels), dtype=torch.long)
            for s, split in splits.items()}
  generator = torch.Generator().manual_seed(spec["seed"])

  def evaluate(split):
    model.eval()
    predictions = []
    with torch.no_grad():
      for start in range(0, len(splits[split]), spec["eval_batch_size"]):
        index = range(start, min(start + spec["eval_batch_size"], len(splits[split])))
        predictions.append(logits_of(batch_of(split, index)).argmax(-1))
    model.train()
    y_pred, y_true = torch.cat(predictions).numpy(), labels[split].numpy()
    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro"))}

  history, step_seconds = [], []
  model.train()
  for epoch in range(spec["epochs"]):
    cpu0 = time.process_time()
    order = torch.randperm(n_train, generator=generator).tolist()
    for start in range(0, n_train, spec["texts_per_batch"]):
      t0 = time.perf_counter()
      index = order[start:start + spec["texts_per_batch"]]
      loss = torch.nn.functional.cross_entropy(logits_of(batch_of("train", index)),
                                               labels["train"][index])
      loss.backward()
      torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
      optimizer.step()
      scheduler.step()
      optimizer.zero_grad()
      step_seconds.append(time.perf_counter() - t0)
    record = {"epoch": epoch + 1, "validation": evaluate("validation"), "test": evaluate("test"),
              "epoch_cpu_seconds": time.process_time() - cpu0}
    history.append(record)
  return {"history": history, "steps_per_epoch": per_epoch,
          "seconds_per_step": statistics.median(step_seconds[per_epoch:] or step_seconds)}


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
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    torch_optimizer.step()
    scheduler.step()
    torch_optimizer.zero_grad()
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
