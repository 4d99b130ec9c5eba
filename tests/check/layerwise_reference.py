"""The layer-wise Lie derivative estimator of Gruver et al. (ICLR 2023), ported to compare against.

Source: github.com/ngruver/lie-deriv, lee/layerwise_lee.py (store_inputs, store_estimator, is_leaf,
is_excluded, selective_apply, apply_hooks, reset, reset2, compute_equivariance_attribution). Changes:
the probes are drawn on the model's device with the output's width instead of on CUDA with 1000
classes, a ``generator`` argument seeds them, the per-probe tables are plain dicts instead of pandas
frames, and the list of leaf modules names the classes timm 1.0 still has (``timm.layers``). Each
probe is one forward and one backward pass; every leaf module's local Lie derivative (bilinear
translation along x, :mod:`lie_reference`) is computed on the first forward only.

Original licence:

    MIT License

    Copyright (c) 2022 Nate Gruver

    Permission is hereby granted, free of charge, to any person obtaining a copy
    of this software and associated documentation files (the "Software"), to deal
    in the Software without restriction, including without limitation the rights
    to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
    copies of the Software, and to permit persons to whom the Software is
    furnished to do so, subject to the following conditions:

    The above copyright notice and this permission notice shall be included in all
    copies or substantial portions of the Software.

    THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
    IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
    FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
    AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
    LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
    OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
    SOFTWARE.
"""

# fmt: off
# ruff: noqa
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from lie_reference import translation_lie_deriv, rotation_lie_deriv, scale_lie_deriv


class flag:
    pass

singleton = flag
singleton.compute_lie = True
singleton.op_counter = 0
singleton.fwd = True


def store_inputs(lie_deriv_type, self, inputs, outputs):
    if not singleton.fwd or not singleton.compute_lie:
        return
    with torch.no_grad():
        singleton.compute_lie = False
        if not hasattr(self, "_lie_norm_sum"):
            self._lie_norm_sum = []
            self._lie_norm_sum_sq = []
            self._num_probes = []
            self._op_counter = []
            self._fwd_counter = 0
            self._lie_deriv_output = []
        if self._fwd_counter == len(self._lie_norm_sum):
            self._lie_norm_sum.append(0)
            self._lie_norm_sum_sq.append(0)
            self._num_probes.append(0)
            self._op_counter.append(singleton.op_counter)
            self._lie_deriv_output.append(0)
            singleton.op_counter += 1
            assert len(inputs) == 1
            (x,) = inputs
            x = x + torch.zeros_like(x)
            self._lie_deriv_output[self._fwd_counter] = lie_deriv_type(self, x)

        self._fwd_counter += 1
        singleton.compute_lie = True


def store_estimator(self, grad_input, grad_output):
    if singleton.compute_lie:
        with torch.no_grad():
            assert len(grad_output) == 1
            bs = grad_output[0].shape[0]
            self._fwd_counter -= 1  # reverse of forward ordering
            i = self._fwd_counter
            estimator = (
                (grad_output[0] * self._lie_deriv_output[i]).reshape(bs, -1).sum(-1) ** 2
            ).cpu().data.numpy()
            self._lie_norm_sum[i] += estimator
            self._lie_norm_sum_sq[i] += estimator**2
            self._num_probes[i] += 1


def _leaflist():
    from timm.layers import PatchEmbed, Mlp, DropPath, BlurPool2d, GatherExcite, EvoNorm2dB0
    from timm.models.vision_transformer import Attention
    from timm.models.mlp_mixer import MixerBlock, Affine, SpatialGatingBlock
    from timm.layers import SEModule
    from timm.models._efficientnet_blocks import SqueezeExcite

    return (Attention, MixerBlock, Affine, SpatialGatingBlock, PatchEmbed, Mlp, DropPath, BlurPool2d,
            GatherExcite, EvoNorm2dB0, nn.BatchNorm2d, nn.BatchNorm1d, nn.LayerNorm, nn.GroupNorm,
            SEModule, SqueezeExcite)

leaflist = _leaflist()


def is_leaf(m):
    return (not hasattr(m, "children") or not list(m.children())) or isinstance(m, leaflist)


def is_excluded(m):
    excluded_list = nn.Dropout
    return isinstance(m, excluded_list)


def selective_apply(m, fn):
    if is_leaf(m):
        if not is_excluded(m):
            fn(m)
    else:
        for c in m.children():
            selective_apply(c, fn)


def apply_hooks(model, lie_deriv_type):
    lie_deriv = {
        "translation": translation_lie_deriv,
        "rotation": rotation_lie_deriv,
        "scale": scale_lie_deriv,
    }[lie_deriv_type]
    handles = []
    selective_apply(model, lambda m: handles.append(m.register_forward_hook(partial(store_inputs, lie_deriv))))
    selective_apply(model, lambda m: handles.append(m.register_backward_hook(store_estimator)))
    return handles


def reset(self):
    try:
        del self._lie_norm_sum
        del self._lie_norm_sum_sq
        del self._num_probes
        del self._op_counter
        del self._bwd_counter
        del self._lie_deriv_output
    except AttributeError:
        pass


def reset2(self):
    self._lie_norm_sum = [0.0] * len(self._lie_norm_sum)
    self._lie_norm_sum_sq = [0.0] * len(self._lie_norm_sum)
    self._num_probes = [0.0] * len(self._lie_norm_sum)


def compute_equivariance_attribution(model, img_batch, num_probes=100, generator=None):
    """Return ``{(name, class name, op counter, call): [per-probe estimates of ‖J_{k→out} L_k‖² per image]}``."""
    model_fn = lambda z: F.softmax(model(z), dim=1)
    all_errs = {}
    for j in range(num_probes):
        singleton.fwd = True
        y = model_fn(img_batch)
        z = torch.randn(y.shape, generator=generator).to(y.device)
        loss = (z * y).sum()
        singleton.fwd = False
        loss.backward()
        model.zero_grad()
        singleton.op_counter = 0

        for name, module in model.named_modules():
            if hasattr(module, "_lie_norm_sum"):
                for i in range(len(module._lie_norm_sum)):
                    assert module._num_probes[i] == 1

                    lie_norm = module._lie_norm_sum[i] / module._num_probes[i]
                    mod = module.__class__.__name__
                    key = (name + (f"{i}" if i else ""), mod, module._op_counter[i], i)
                    all_errs.setdefault(key, []).append(lie_norm)
        selective_apply(model, reset2)
    model.apply(reset)
    return all_errs
