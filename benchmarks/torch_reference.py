"""PyTorch references of the contrastive terms: the LCL release's `LCL.forward` and SupCon.

One copy shared by `tests/test_losses.py` (lcl_jax's losses against the release),
`benchmarks/loss_benchmark.py` (`--torch_release` timings) and
`benchmarks/pytorch_loop.py` (the SCL / LCL PyTorch training loops of the parity
benchmark). torch is imported by the caller's first call, not at import time.
"""
from __future__ import annotations


def release_lcl_loss(features, labels, weight_logits, temperature, *, loops: bool = False):
  """The authors' released `LCL.forward` (loss.py of varsha33/LCL_loss), transcribed.

  Args:
    features: [B, D] float torch tensor of unit rows (the caller L2-normalises).
    labels: [B] integer torch tensor.
    weight_logits: [B, C] float torch tensor, the weighting network's logits; the
      release applies the softmax inside (w_i = softmax(Ψ logits_i), the paper's Eq. 5).
    temperature: positive float τ.
    loops: build the weight mask with the release's double Python loop
      (``weighted_mask[i, j] = weights[i, labels[j]]``) instead of the same gather in one
      indexing operation (what a training loop should use: O(B²) Python otherwise).

  Returns:
    Scalar tensor: the mean over anchors of −Σ_k w_{i,y_k} 1[y_k = y_i] log p_ik /
    |P(i)|, in nats (Suresh & Ong 2021, Eq. 4). An anchor without a positive divides
    by zero (NaN), as in the release.
  """
  import torch  # pylint: disable=g-import-not-at-top

  batch = features.shape[0]
  weights = torch.softmax(weight_logits, dim=1)
  label_col = labels.contiguous().view(-1, 1)
  mask = torch.eq(label_col, label_col.T).to(features.dtype)
  anchor_dot_contrast = features @ features.T / temperature
  logits_mask = torch.scatter(torch.ones_like(mask), 1, torch.arange(batch).view(-1, 1), 0)
  mask = mask * logits_mask
  if loops:
    weighted_mask = torch.zeros_like(logits_mask)
    for i in range(batch):
      for j, label in enumerate(label_col):
        weighted_mask[i, j] = weights[i, label]
  else:
    weighted_mask = weights[:, labels.view(-1)]
  weighted_mask = weighted_mask * logits_mask
  pos_weighted_mask = weighted_mask * mask
  logits_max, _ = torch.max(anchor_dot_contrast, dim=1, keepdim=True)
  logits = anchor_dot_contrast - logits_max.detach()
  exp_logits = torch.exp(logits) * weighted_mask
  log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True))
  return (-(pos_weighted_mask * log_prob).sum(1) / mask.sum(1)).mean()


def supcon_loss(features, labels, temperature):
  """Supervised contrastive loss (Khosla et al. 2020, Eq. 2, L_out), the term of SCL
  (Gunel et al. 2021): the release's LCL with every weight 1.

  Args:
    features: [B, D] float torch tensor of unit rows. labels: [B] integer tensor.
    temperature: positive float τ.

  Returns:
    Scalar tensor in nats: the mean over anchors of −(1/|P(i)|) Σ_{p∈P(i)} log
    (exp(z_i·z_p/τ) / Σ_{k≠i} exp(z_i·z_k/τ)).
  """
  import torch  # pylint: disable=g-import-not-at-top

  batch = features.shape[0]
  not_self = ~torch.eye(batch, dtype=torch.bool)
  positives = (labels.view(-1, 1) == labels.view(1, -1)) & not_self
  logits = (features @ features.T / temperature).masked_fill(~not_self, float("-inf"))
  log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
  log_prob = log_prob.masked_fill(~positives, 0.0)
  return (-log_prob.sum(1) / positives.sum(1)).mean()
