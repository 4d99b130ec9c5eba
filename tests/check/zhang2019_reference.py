"""Zhang 2019's shift-consistency evaluation (``validate_shift``), ported to compare against.

Source: github.com/adobe/antialiased-cnns, main.py @ b27a34a26f3ab039113d44d83c54d0428598ac9c
(``validate_shift``, ``agreement`` and ``AverageMeter``; unchanged since the repository's first
commit). Changes: the crop size and offset range (224 and 32 there) are arguments; ``args`` and
``.cuda()`` are gone; timing and printing are removed; numpy's global generator is seeded from
``seed`` at the start (the reference never seeds it, so its own offsets cannot be reproduced).

This file alone carries the reference's licence, which differs from the project's:

    This code is built from the PyTorch examples repository: https://github.com/pytorch/examples/.
    Copyright (c) 2017 Torch Contributors.
    The Pytorch examples are available under the BSD 3-Clause License.

    Adobe's modifications are Copyright 2019 Adobe. All rights reserved.
    Adobe's modifications are licensed under the Creative Commons Attribution-NonCommercial-ShareAlike
    4.0 International Public License (CC-NC-SA-4.0). To view a copy of the license, visit
    https://creativecommons.org/licenses/by-nc-sa/4.0/legalcode.

    BSD 3-Clause License

    Copyright (c) 2017,
    All rights reserved.

    Redistribution and use in source and binary forms, with or without
    modification, are permitted provided that the following conditions are met:

    * Redistributions of source code must retain the above copyright notice, this
      list of conditions and the following disclaimer.

    * Redistributions in binary form must reproduce the above copyright notice,
      this list of conditions and the following disclaimer in the documentation
      and/or other materials provided with the distribution.

    * Neither the name of the copyright holder nor the names of its
      contributors may be used to endorse or promote products derived from
      this software without specific prior written permission.

    THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
    AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
    IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
    DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
    FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
    DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
    SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
    CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
    OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
    OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""

import numpy as np
import torch


class AverageMeter(object):
    """Computes and stores the average and current value"""

    def __init__(self):
        self.reset()

    def reset(self):
        self.val = 0
        self.avg = 0
        self.sum = 0
        self.count = 0

    def update(self, val, n=1):
        self.val = val
        self.sum += val * n
        self.count += n
        self.avg = self.sum / self.count


def agreement(output0, output1):
    pred0 = output0.argmax(dim=1, keepdim=False)
    pred1 = output1.argmax(dim=1, keepdim=False)
    agree = pred0.eq(pred1)
    agree = 100. * torch.mean(agree.type(torch.FloatTensor).to(output0.device))
    return agree


def validate_shift(val_loader, model, seed, epochs_shift=5, crop=224, offsets=32):
    """Return the consistency (percent) of ``model`` over ``epochs_shift`` passes of ``val_loader``."""
    np.random.seed(seed)
    consist = AverageMeter()

    # switch to evaluate mode
    model.eval()

    with torch.no_grad():
        for ep in range(epochs_shift):
            for i, (input, target) in enumerate(val_loader):
                off0 = np.random.randint(offsets, size=2)
                off1 = np.random.randint(offsets, size=2)

                output0 = model(input[:, :, off0[0]:off0[0] + crop, off0[1]:off0[1] + crop])
                output1 = model(input[:, :, off1[0]:off1[0] + crop, off1[1]:off1[1] + crop])

                cur_agree = agreement(output0, output1).type(torch.FloatTensor).to(output0.device)

                # measure agreement and record
                consist.update(cur_agree.item(), input.size(0))

    return consist.avg
