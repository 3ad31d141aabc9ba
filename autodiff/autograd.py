"""`torch.autograd`'s names, for code written with `import autodiff as torch`."""

from __future__ import annotations

from .checking import gradcheck
from .differentiate import grad
from .engine import enable_grad, no_grad
from .function import Function, FunctionCtx


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph: bool = False,
             inputs=None) -> None:
    """`t.backward(g)` for each output t (a Tensor or a sequence of them) in one pass."""
    from .tensor import Tensor
    outs = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if grad_tensors is None:
        seeds = [None] * len(outs)
    else:
        seeds = [grad_tensors] if isinstance(grad_tensors, Tensor) else list(grad_tensors)
    if len(seeds) != len(outs):
        raise ValueError(f"autograd.backward: {len(seeds)} grad_tensors for {len(outs)} tensors")
    if len(outs) == 1:
        outs[0].backward(seeds[0], retain_graph=retain_graph, create_graph=create_graph,
                         inputs=inputs)
        return
    # several outputs: one backward of sum_i <out_i, seed_i>, so shared parts run once
    total = None
    for out, seed in zip(outs, seeds):
        term = out.sum() if seed is None and out.size == 1 else (out * seed).sum()
        total = term if total is None else total + term
    total.backward(retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)


__all__ = ["Function", "FunctionCtx", "grad", "backward", "gradcheck", "no_grad", "enable_grad"]
