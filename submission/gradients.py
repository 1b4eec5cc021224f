"""The gradient of one training step, as the paper's techniques form it: the loss, plain or
SAM gradients, the meta look-ahead over a pair of batches, and Gradient Centralization.
update_grad combines them as HP (train.py) switches them; train.py's loop then steps SGD.

The gradient functions leave the step's direction in the parameters' .grad and put back any
weights they move, so the optimizer always steps from where the network stood.
"""

import functools

import torch
import torch.nn.functional as F


def scaled_cross_entropy(out, target, label_smoothing, scale):
    """The training loss, in fp32 whatever the forward pass ran in, times the static fp16 loss
    scale (1 with bf16 and on CPU). An ensemble's [batch, members, classes] output counts each
    member's mean loss in full (the sum over members), so every member learns at the rate one
    network alone would."""
    if out.dim() == 3:
        members = out.shape[1]
        out, target = out.flatten(0, 1), target.repeat_interleave(members)
        scale = scale * members
    return F.cross_entropy(out.float(), target, label_smoothing=label_smoothing) * scale


def plain_grad(model, params, batch, loss_fn):
    """Leaves dL/dparams in .grad; returns the loss and the logits."""
    for p in params:
        p.grad = None
    out = model(batch[0])
    loss = loss_fn(out, batch[1])
    loss.backward()
    return loss.detach(), out.detach()


@torch.no_grad()
def add_to_params(params, deltas, sign=1.0):
    for p, d in zip(params, deltas):
        p.add_(d, alpha=sign)


def sam_grad(model, params, batch, loss_fn, rho):
    """Sharpness-Aware Minimization gradient: g at w + rho * g(w)/||g(w)||, weights restored to w.

    The caller's optimizer then steps *from w* with this gradient (the real two-pass SAM update).
    """
    loss, out = plain_grad(model, params, batch, loss_fn)
    with torch.no_grad():
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        norm = torch.norm(torch.stack([g.norm() for g in grads])) + 1e-12
        eps = [g * (rho / norm) for g in grads]
    add_to_params(params, eps, +1)  # ascend to the worst point nearby
    plain_grad(model, params, batch, loss_fn)
    add_to_params(params, eps, -1)  # back to w (BN running stats saw one extra batch: harmless)
    return loss, out


def meta_grad(model, params, b1, b2, grad_fn, inner_lr, inner_weight):
    """First-order look-ahead across two batches ("tasks"), in the spirit of MLTP:
    theta' = theta - inner_lr * g(B1; theta);  gradient = inner_weight * g(B1; theta) + g(B2; theta').
    A step that helps B1 is only rewarded if it also helps B2. Weights restored to theta."""
    loss, out = grad_fn(b1)
    g1 = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]
    step = [g * -inner_lr for g in g1]
    add_to_params(params, step, +1)
    grad_fn(b2)
    add_to_params(params, step, -1)
    with torch.no_grad():
        for p, g in zip(params, g1):
            p.grad.add_(g, alpha=inner_weight)
    return loss, out


def centralize_gradients(params):
    """Gradient Centralization: remove each conv/linear filter gradient's mean (all axes but the
    output channel). Acts as a projection constraining weights to a hyperplane: smoother loss."""
    for p in params:
        if p.grad is not None and p.grad.dim() > 1:
            p.grad.sub_(p.grad.mean(dim=tuple(range(1, p.grad.dim())), keepdim=True))


def batch_grad(forward, params, batch, cfg, loss_scale):
    """Plain or SAM gradient of one batch, true (unscaled) values in .grad; (scaled loss, logits)."""
    loss_fn = functools.partial(scaled_cross_entropy, label_smoothing=cfg["label_smoothing"], scale=loss_scale)
    if cfg["sam"]:
        loss, out = sam_grad(forward, params, batch, loss_fn, cfg["sam_rho"])
    else:
        loss, out = plain_grad(forward, params, batch, loss_fn)
    if loss_scale != 1.0:
        for p in params:
            p.grad.div_(loss_scale)
    return loss, out


def update_grad(forward, params, batches, lr, cfg, loss_scale):
    """Leaves the direction of one optimizer step in .grad: the gradient of one batch, or with meta
    the look-ahead over a pair (inner rate meta_inner_lr_mult x lr), then GC on the result.
    Returns the (scaled) loss and the logits of the first batch."""
    grad_fn = functools.partial(batch_grad, forward, params, cfg=cfg, loss_scale=loss_scale)
    if cfg["meta"]:
        loss, out = meta_grad(
            forward, params, batches[0], batches[1], grad_fn, cfg["meta_inner_lr_mult"] * lr, cfg["meta_inner_weight"]
        )
    else:
        loss, out = grad_fn(batches[0])
    if cfg["gc"]:
        centralize_gradients(params)
    return loss, out
