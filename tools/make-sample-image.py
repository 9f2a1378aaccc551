#!/usr/bin/env python3
"""Make graphs/images/sample.png, the bundled demo image: a procedural scene (sky gradient, sun,
hills, a striped lighthouse, a checkerboard and fine lines that show resampling quality).
Made by this script so that the project ships no third-party image. Needs numpy and Pillow."""
import sys

import numpy as np
from PIL import Image

W, H = 480, 320
y, x = np.mgrid[0:H, 0:W].astype(np.float64)
img = np.zeros((H, W, 3))
# sky
t = y / H
img[..., 0] = 0.35 + 0.5 * t
img[..., 1] = 0.55 + 0.3 * t
img[..., 2] = 0.95 - 0.2 * t
# sun with a soft edge
d = np.hypot(x - 370, y - 80)
sun = np.clip((42 - d) / 3, 0, 1)[..., None]
img = img * (1 - sun) + np.array([1.0, 0.85, 0.3]) * sun
# hills
hill = 230 + 25 * np.sin(x / 37.0) + 12 * np.sin(x / 11.0 + 1)
m = (y > hill)[..., None]
img = np.where(m, np.stack([0.15 + 0.1 * np.sin(x / 5), 0.45 + 0.0 * x, 0.2 + 0.0 * x], -1), img)
# lighthouse: red/white stripes
lh = (np.abs(x - 120) < 14 - (y - 90) * 0.03) & (y > 90) & (y < 250)
stripes = ((y // 18) % 2 == 0)
col = np.where(stripes[..., None], [0.85, 0.1, 0.1], [0.97, 0.97, 0.97])
img = np.where(lh[..., None], col, img)
# checkerboard and fine lines (hard for resamplers)
cb = (x > 300) & (x < 460) & (y > 250) & (y < 310)
img = np.where(cb[..., None], (((x // 4) + (y // 4)) % 2)[..., None] * 1.0, img)
ln = (x > 20) & (x < 90) & (y > 20) & (y < 80) & ((x.astype(int) % 3) == 0)
img = np.where(ln[..., None], 0.05, img)
out = sys.argv[1] if len(sys.argv) > 1 else "graphs/images/sample.png"
Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB").save(out, optimize=True)
# The upscaling demo's input: the same scene at a third of the size (160x107, Lanczos), small
# enough that a network enlarges it in seconds on two CPU cores.
small = sys.argv[2] if len(sys.argv) > 2 else "graphs/images/small.png"
Image.open(out).resize((160, 107), Image.LANCZOS).save(small, optimize=True)
