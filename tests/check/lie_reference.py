"""The Lie derivative of Gruver et al. (ICLR 2023), ported from the reference code to compare against.

Source: github.com/ngruver/lie-deriv, lee/transforms.py and lee/lie_derivs.py (grid_sample, img_like,
affine_transform, translate, rotate, scale, jvp and the translation, rotation and scale Lie derivatives),
unchanged but for keeping only image inputs in affine_transform (its token-sequence branch is left out).
It computes Jacobian-vector products with two backward passes (the double-backward trick).

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
import numpy as np
import torch
import torch.nn.functional as F


def grid_sample(image, optical):
    N, C, IH, IW = image.shape
    _, H, W, _ = optical.shape

    ix = optical[..., 0]
    iy = optical[..., 1]

    ix = ((ix + 1) / 2) * (IW - 1)
    iy = ((iy + 1) / 2) * (IH - 1)
    with torch.no_grad():
        ix_nw = torch.floor(ix)
        iy_nw = torch.floor(iy)
        ix_ne = ix_nw + 1
        iy_ne = iy_nw
        ix_sw = ix_nw
        iy_sw = iy_nw + 1
        ix_se = ix_nw + 1
        iy_se = iy_nw + 1

    nw = (ix_se - ix) * (iy_se - iy)
    ne = (ix - ix_sw) * (iy_sw - iy)
    sw = (ix_ne - ix) * (iy - iy_ne)
    se = (ix - ix_nw) * (iy - iy_nw)

    with torch.no_grad():
        ix_nw = IW - 1 - (IW - 1 - ix_nw.abs()).abs()
        iy_nw = IH - 1 - (IH - 1 - iy_nw.abs()).abs()

        ix_ne = IW - 1 - (IW - 1 - ix_ne.abs()).abs()
        iy_ne = IH - 1 - (IH - 1 - iy_ne.abs()).abs()

        ix_sw = IW - 1 - (IW - 1 - ix_sw.abs()).abs()
        iy_sw = IH - 1 - (IH - 1 - iy_sw.abs()).abs()

        ix_se = IW - 1 - (IW - 1 - ix_se.abs()).abs()
        iy_se = IH - 1 - (IH - 1 - iy_se.abs()).abs()

    image = image.view(N, C, IH * IW)

    nw_val = torch.gather(
        image, 2, (iy_nw * IW + ix_nw).long().view(N, 1, H * W).repeat(1, C, 1)
    )
    ne_val = torch.gather(
        image, 2, (iy_ne * IW + ix_ne).long().view(N, 1, H * W).repeat(1, C, 1)
    )
    sw_val = torch.gather(
        image, 2, (iy_sw * IW + ix_sw).long().view(N, 1, H * W).repeat(1, C, 1)
    )
    se_val = torch.gather(
        image, 2, (iy_se * IW + ix_se).long().view(N, 1, H * W).repeat(1, C, 1)
    )

    out_val = (
        nw_val.view(N, C, H, W) * nw.view(N, 1, H, W)
        + ne_val.view(N, C, H, W) * ne.view(N, 1, H, W)
        + sw_val.view(N, C, H, W) * sw.view(N, 1, H, W)
        + se_val.view(N, C, H, W) * se.view(N, 1, H, W)
    )

    return out_val


def img_like(img_shape):
    bchw = len(img_shape) == 4 and img_shape[-2:] != (1, 1)
    is_square = int(int(np.sqrt(img_shape[1])) + 0.5) ** 2 == img_shape[1]
    is_one_off_square = int(int(np.sqrt(img_shape[1])) + 0.5) ** 2 == img_shape[1] - 1
    is_two_off_square = int(int(np.sqrt(img_shape[1])) + 0.5) ** 2 == img_shape[1] - 2
    bnc = (
        len(img_shape) == 3
        and img_shape[1] != 1
        and (is_square or is_one_off_square or is_two_off_square)
    )
    return bchw or bnc


def affine_transform(affineMatrices, img):
    assert img_like(img.shape)
    x = img
    flowgrid = F.affine_grid(
        affineMatrices, size=x.size(), align_corners=True
    )  # .double()
    # uses manual grid sample implementation to be able to compute 2nd derivatives
    # img_out = F.grid_sample(img, flowgrid,padding_mode="reflection",align_corners=True)
    transformed = grid_sample(x, flowgrid)
    return transformed


def translate(img, t, axis="x"):
    """Translates an image by a fraction of the size (sx,sy) in (0,1)"""
    affineMatrices = torch.zeros(img.shape[0], 2, 3).to(img.device)
    affineMatrices[:, 0, 0] = 1
    affineMatrices[:, 1, 1] = 1
    if axis == "x":
        affineMatrices[:, 0, 2] = t
    else:
        affineMatrices[:, 1, 2] = t
    return affine_transform(affineMatrices, img)


def rotate(img, angle):
    """Rotates an image by angle"""
    affineMatrices = torch.zeros(img.shape[0], 2, 3).to(img.device)
    affineMatrices[:, 0, 0] = torch.cos(angle)
    affineMatrices[:, 0, 1] = torch.sin(angle)
    affineMatrices[:, 1, 0] = -torch.sin(angle)
    affineMatrices[:, 1, 1] = torch.cos(angle)
    return affine_transform(affineMatrices, img)


def scale(img, s):
    affineMatrices = torch.zeros(img.shape[0], 2, 3).to(img.device)
    affineMatrices[:, 0, 0] = 1 - s
    affineMatrices[:, 1, 1] = 1 - s
    return affine_transform(affineMatrices, img)


def jvp(f, x, u):
    """Jacobian vector product Df(x)u vs typical autograd VJP vTDF(x).
    Uses two backwards passes: computes (vTDF(x))u and then derivative wrt to v to get DF(x)u"""
    with torch.enable_grad():
        y = f(x)
        v = torch.ones_like(
            y, requires_grad=True
        )  # Dummy variable (could take any value)
        vJ = torch.autograd.grad(y, [x], [v], create_graph=True)
        Ju = torch.autograd.grad(vJ, [v], [u], create_graph=True)
        return Ju[0]


def translation_lie_deriv(model, inp_imgs, axis="x"):
    """Lie derivative of model with respect to translation vector, output can be a scalar or an image"""
    # vector = vector.to(inp_imgs.device)
    if not img_like(inp_imgs.shape):
        return 0.0

    def shifted_model(t):
        # print("Input shape",inp_imgs.shape)
        shifted_img = translate(inp_imgs, t, axis)
        z = model(shifted_img)
        # print("Output shape",z.shape)
        # if model produces an output image, shift it back
        if img_like(z.shape):
            z = translate(z, -t, axis)
        # print('zshape',z.shape)
        return z

    t = torch.zeros(1, requires_grad=True, device=inp_imgs.device)
    lie_deriv = jvp(shifted_model, t, torch.ones_like(t, requires_grad=True))
    # print('Liederiv shape',lie_deriv.shape)
    # print(model.__class__.__name__)
    # print('')
    return lie_deriv


def rotation_lie_deriv(model, inp_imgs):
    """Lie derivative of model with respect to rotation, assumes scalar output"""
    if not img_like(inp_imgs.shape):
        return 0.0

    def rotated_model(t):
        rotated_img = rotate(inp_imgs, t)
        z = model(rotated_img)
        if img_like(z.shape):
            z = rotate(z, -t)
        return z

    t = torch.zeros(1, requires_grad=True, device=inp_imgs.device)
    lie_deriv = jvp(rotated_model, t, torch.ones_like(t))
    return lie_deriv


def scale_lie_deriv(model, inp_imgs):
    """Lie derivative of model with respect to rotation, assumes scalar output"""
    if not img_like(inp_imgs.shape):
        return 0.0

    def scaled_model(t):
        scaled_img = scale(inp_imgs, t)
        z = model(scaled_img)
        if img_like(z.shape):
            z = scale(z, -t)
        return z

    t = torch.zeros(1, requires_grad=True, device=inp_imgs.device)
    lie_deriv = jvp(scaled_model, t, torch.ones_like(t))
    return lie_deriv
