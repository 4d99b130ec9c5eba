"""Rahman & Yeh's scale-equivariance test loop (NeurIPS 2023), ported to run on CPU on one batch.

Ported from ``scale_eq/tests/test_equievarience.py`` (``TestEquivarinecError.get_equivarience_error``)
and ``scale_eq/utils/core_utils.py`` (``resample``) of github.com/ashiq24/Scale_Equivarinat_Fourier_Layer.
Changes: the model's ``get_feature`` is the model itself, the device is the CPU, the data loader is a
list of ``(images, labels)`` batches whose resolution is read off the images, and the real-input
branch of ``resample`` returns on the CPU; the arithmetic is theirs, line for line.

MIT License

Copyright (c) 2023 Md Ashiqur rahman

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

from __future__ import annotations

import torch
import torch.nn.functional as F


def resample(x, num, complex=True, skip_nyq=False):
    """Their ideal resampler: crop or zero-pad the 2-D spectrum (``norm="forward"`` keeps values)."""
    if not complex:
        assert num[0] == num[1]
        X = torch.fft.rfft2(x, norm="forward")
        Y = torch.zeros(X.shape[0], X.shape[1], num[0], num[1] // 2 + 1, dtype=X.dtype)
        en = min(num[1] // 2, x.shape[-1] // 2)
        if num[0] % 2 == 0:
            Y[:, :, :en, :en + 1] = X[:, :, :en, :(en + 1)]
            Y[:, :, -en:, :(en + 1)] = X[:, :, -en:, :(en + 1)]
        else:
            Y[:, :, :en + 1, :en + 1] = X[:, :, :en + 1, :(en + 1)]
            Y[:, :, -en:, :(en + 1)] = X[:, :, -en:, :(en + 1)]
        if skip_nyq:
            Y[:, :, -en, :] = 0.0
            Y[:, :, :, -1] = 0.0
            if num[0] % 2 == 1:
                Y[:, :, en, :] = 0.0
        return torch.fft.irfft2(Y, s=(num[0], num[1]), norm="forward")
    X = torch.fft.fft2(x, norm="forward")
    Y = torch.zeros(X.shape[0], X.shape[1], num[0], num[1], dtype=X.dtype)
    en = min(num[0] // 2, x.shape[-1] // 2)
    Y[:, :, :en, :en] = X[:, :, :en, :en]
    Y[:, :, -en:, :en] = X[:, :, -en:, :en]
    Y[:, :, :en, -en:] = X[:, :, :en, -en:]
    Y[:, :, -en:, -en:] = X[:, :, -en:, -en:]
    if skip_nyq:
        Y[:, :, -en, :] = 0.0
        Y[:, :, :, -en] = 0.0
    return torch.fft.ifft2(Y, norm="forward")


def get_equivarience_error(model, data_loader, scale_range, samples=100, mode="ideal"):
    """Their figure: per image, the per-channel ``‖D f(x) − f(D x)‖² / (‖D f(x)‖² + 1e-6)`` averaged over
    channels and summed over the lower resolutions, divided by ``len(scale_range)``; averaged over images."""
    scale_range.sort(reverse=True)
    cur_sam = 0
    total_error = 0.0
    model.eval()
    with torch.no_grad():
        for batch in data_loader:
            resolution = batch[0].shape[-1]
            if resolution != scale_range[0]:
                continue
            img = batch[0]
            feature_h = model(img)
            t_error = None
            for j in range(1, len(scale_range)):
                if mode == "ideal":
                    imgl = resample(img, (scale_range[j], scale_range[j]), complex=False)
                else:
                    imgl = F.interpolate(img, size=(scale_range[j], scale_range[j]), mode=mode, antialias=True)
                feature_l = model(imgl)
                if mode == "ideal":
                    ds_feature_h = resample(feature_h, (feature_l.shape[-2], feature_l.shape[-1]), complex=True,
                                            skip_nyq=True)
                    feature_l = resample(feature_l, (feature_l.shape[-2], feature_l.shape[-1]), complex=True,
                                         skip_nyq=True)
                else:
                    ds_feature_h = F.interpolate(torch.real(feature_h), size=(feature_l.shape[-2], feature_l.shape[-1]),
                                                 mode=mode, antialias=True)
                    feature_l = F.interpolate(torch.real(feature_l), size=(feature_l.shape[-2], feature_l.shape[-1]),
                                              mode=mode, antialias=True)
                error = torch.norm(ds_feature_h - feature_l, dim=(-1, -2), p=2) ** 2 / (
                    torch.norm(ds_feature_h, dim=(-1, -2), p=2) ** 2 + 1e-6)
                error = torch.mean(error, dim=1)  # mean across channels
                t_error = error if t_error is None else t_error + error
            total_error += t_error.sum() / len(scale_range)
            cur_sam += img.shape[0]
            if cur_sam > samples:
                break
    return total_error / cur_sam
