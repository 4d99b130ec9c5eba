"""Three published shift-robustness evaluations, each written as one plain loop to compare against.

The repositories of these protocols carry no licence, so nothing is copied from them: each loop
below is written anew from the paper and from what the public evaluation code does (its sizes,
ranges, draws and figures, read at the commit named), with numpy's legacy global generator drawn in
the same order. They share no code with the package, so an agreement is a check of its loop.

- Azulay & Weiss, JMLR 2019 — AzulEye/CNN-Failures, CheckTranslationInvariance.py @ 9c4be29,
  ``JaggedNess``, crop setting: crops at (c, c) and (c+1, c+1) for the 8 positions
  ``c = centre - 4 .. centre + 3``, ``centre = (W - crop - 1) // 2``; every pair weighs the same.
  Its other branch, for images smaller than the input (black background): the image pasted into
  zeros of the input's size at (c, c) and (c+1, c+1), ``centre = (input - W - 1) // 2``. The
  scaling setting is not in that code; the repository's animation of it, GIFS/ScaleBlack.gif,
  shows the pasted image grown by one pixel about its top-left corner, so the
  loop below pastes the image and the image one pixel larger at (c, c), resized as torchvision's
  ``Resize`` resizes PIL images (PIL's bilinear filter).
- Chaman & Dokmanić, CVPR 2021 — achaman2/truly_shift_invariant_cnns, main.py @ 9c319a2,
  ``validate``: per batch two ``randint(-32, 32, size=2)`` circular shifts (rows, columns), shared
  by the batch, numpy seeded with 0; consistency of the two shifted images, batch-size weighted.
- Michaeli, Michaeli & Soudry, CVPR 2023 — hmichaeli/alias_free_convnets, shift_eval.py @ 7ef0a6e,
  ``evaluate_full_adversarial_shift_metrics`` with half-pixel shifts: correct unshifted, under
  every roll ``(dy, dx) in [1, M)²`` and under every half-pixel shift by ideal upsampling
  (zero insertion, ideal low-pass with half-weight Nyquist bins, roll by ``2d - 1`` on the fine
  grid, subsampling) — which moves content by ``-(d - 1/2)``.
"""

import itertools

import numpy as np
import torch


@torch.no_grad()
def azulay_weiss(model, loader, crop, positions=8):
    """Return (P(top-1 change), mean |Δp| of the first crop's top class) over all pairs."""
    tally = _Jaggedness()
    for images, _ in loader:
        width = images.shape[-1]
        centre = (width - crop - 1) // 2
        for c in range(centre - positions // 2, centre + positions // 2):
            tally.add(model, images[:, :, c:c + crop, c:c + crop], images[:, :, c + 1:c + 1 + crop, c + 1:c + 1 + crop])
    return tally.figures()


@torch.no_grad()
def azulay_weiss_embedded(model, loader, canvas, positions=8, grow=False, size=None):
    """The same figures with each image pasted into zeros of ``canvas`` pixels: moved by one pixel
    diagonally, or (``grow``) pasted one pixel larger at the same corner; first resized to ``size``
    (and ``size + 1``) when it is given."""
    tally = _Jaggedness()
    for original, _ in loader:
        images = original if size is None else pil_bilinear(original, size)
        n = images.shape[-1]
        centre = (canvas - n - 1) // 2
        for c in range(centre - positions // 2, centre + positions // 2):
            first = torch.zeros(*images.shape[:2], canvas, canvas)
            second = torch.zeros_like(first)
            first[:, :, c:c + n, c:c + n] = images
            if grow:
                second[:, :, c:c + n + 1, c:c + n + 1] = pil_bilinear(original, n + 1) if size else pil_bilinear(images, n + 1)
            else:
                second[:, :, c + 1:c + 1 + n, c + 1:c + 1 + n] = images
            tally.add(model, first, second)
    return tally.figures()


def pil_bilinear(images, size):
    """Resize every plane of ``images`` to ``size`` x ``size`` with PIL's bilinear filter, in float."""
    from PIL import Image

    out = torch.empty(*images.shape[:2], size, size)
    for i, c in itertools.product(range(images.shape[0]), range(images.shape[1])):
        plane = Image.fromarray(images[i, c].numpy().astype(np.float32), mode="F")
        out[i, c] = torch.from_numpy(np.array(plane.resize((size, size), Image.BILINEAR)))
    return out


class _Jaggedness:
    """P(top-1 change) and the mean absolute change of the first input's top-class probability."""

    def __init__(self):
        self.changed, self.moved, self.pairs = 0.0, 0.0, 0

    def add(self, model, first_inputs, second_inputs):
        first, second = torch.softmax(model(first_inputs), 1), torch.softmax(model(second_inputs), 1)
        top = first.argmax(1)
        self.changed += (top != second.argmax(1)).sum().item()
        self.moved += (first.gather(1, top[:, None]) - second.gather(1, top[:, None])).abs().sum().item()
        self.pairs += first_inputs.shape[0]

    def figures(self):
        return self.changed / self.pairs, self.moved / self.pairs


@torch.no_grad()
def chaman_dokmanic(model, loader, seed=0, max_shift=32):
    """Return (consistency of two random circular shifts, accuracy unshifted), both fractions."""
    np.random.seed(seed)
    agree, correct, count = 0.0, 0.0, 0
    for images, labels in loader:
        correct += (model(images).argmax(1) == labels).sum().item()
        shift0 = np.random.randint(-max_shift, max_shift, size=2)
        shift1 = np.random.randint(-max_shift, max_shift, size=2)
        a = model(torch.roll(images, shifts=(int(shift0[0]), int(shift0[1])), dims=(2, 3))).argmax(1)
        b = model(torch.roll(images, shifts=(int(shift1[0]), int(shift1[1])), dims=(2, 3))).argmax(1)
        agree += (a == b).sum().item()
        count += images.shape[0]
    return agree / count, correct / count


def ideal_half_pixel_shift(images, fine_shift):
    """Move ``images`` by ``-fine_shift / 2`` pixels per axis by ideal two-fold upsampling (square images)."""
    n, c, h, w = images.shape
    up = torch.zeros(n, c, 2 * h, 2 * w, dtype=images.dtype)
    up[:, :, ::2, ::2] = images
    size = 2 * w
    keep = torch.zeros(size, dtype=images.dtype)
    cutoff = size // 4
    keep[: cutoff + 1] = 1
    keep[size - cutoff:] = 1
    if size % 4 == 0:  # the coarse grid's Nyquist frequency, split between its two aliases
        keep[cutoff] = keep[size - cutoff] = 0.5
    spectrum = torch.fft.fft2(up) * (keep[:, None] * keep[None, :])
    fine = torch.fft.ifft2(spectrum).real * 4
    return torch.roll(fine, shifts=(-fine_shift[0], -fine_shift[1]), dims=(2, 3))[:, :, ::2, ::2]


@torch.no_grad()
def michaeli_soudry(model, loader, max_shift=32):
    """Return the fraction of images classified right unshifted and under every integer and half-pixel shift."""
    robust, count = 0.0, 0
    for images, labels in loader:
        ok = model(images).argmax(1) == labels
        for dy, dx in itertools.product(range(1, max_shift), repeat=2):
            ok &= model(torch.roll(images, shifts=(dy, dx), dims=(2, 3))).argmax(1) == labels
            ok &= model(ideal_half_pixel_shift(images, (2 * dy - 1, 2 * dx - 1))).argmax(1) == labels
        robust += ok.sum().item()
        count += images.shape[0]
    return robust / count
