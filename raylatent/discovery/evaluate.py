"""RCA and Ls on fresh held-out latents with a fixed seed: comparable across runs and steps,
unlike the running training average the authors logged.

R is evaluated as it is trained: batch-norm on batch statistics (batches of the training batch
size), with the running averages left untouched. Eval-mode running averages lag behind A while it
moves and made held-out RCA swing between 0.4 and 0.96 on a toy generator whose training RCA
was steady at 1.0.

`ls` is gamma * mean |eps - eps_hat|, the scale of the paper's Table 1 (the authors' trainer logs
the shift term after multiplying it by gamma = 0.25); `shift_mae` is the plain mean absolute error."""
from __future__ import annotations

import torch

from raylatent.discovery.step import Discovery, sample_shifts

EVAL_SEED = 20_231_009


@torch.no_grad()
def evaluate(disc: Discovery, n: int = 1024, batch: int | None = None, seed: int = EVAL_SEED) -> dict[str, float]:
    was_training = disc.R.training
    saved = [b.clone() for b in disc.R.buffers()]  # running stats, num_batches_tracked
    disc.R.train()
    batch = batch or disc.cfg.batch
    gen = torch.Generator(device=disc.device).manual_seed(seed)
    correct, abs_err, seen = 0, 0.0, 0
    while seen < n:
        b = min(batch, n - seen)
        if n - seen - b == 1:  # never leave a batch of one: BatchNorm in train mode needs two
            b -= 1
        z = torch.randn(b, disc.d, generator=gen, device=disc.device)
        k, eps = sample_shifts(b, disc.cfg.K, disc.cfg, gen, disc.device)
        x0, x1 = disc.G(z), disc.G(z + disc.A(z, k, eps))
        logits, eps_hat = disc.R(x0, x1)
        correct += int((logits.argmax(1) == k).sum())
        abs_err += float((eps - eps_hat).abs().sum())
        seen += b
    for b, v in zip(disc.R.buffers(), saved):
        b.copy_(v)
    disc.R.train(was_training)
    mae = abs_err / n
    # ls on the paper's scale: the authors logged the shift term already weighted by gamma
    return {"rca": correct / n, "ls": disc.cfg.gamma * mae, "shift_mae": mae}
