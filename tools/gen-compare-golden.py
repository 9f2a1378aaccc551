#!/usr/bin/env python3
"""Make the goldens of `tessera compare` (tests/unit/test_compare.c, tests/cli/test_compare.sh)
under tests/golden/compare/, with numpy and scikit-image as the independent reference.

Images (PNG, written by Pillow):
  l8_a.png, l8_b1.png, l8_b2.png     8-bit gray 16x12; b1 differs from a by exactly one level at
                                     several pixels (0 vs 1 among them), b2 by two at one pixel.
  l16_a.png, l16_b1.png, l16_b2.png  the same at 16 bits (65535 vs 65534 among them).
  s5x7_a.png, s5x7_b.png             8-bit RGB, 5 wide and 7 high: smaller than the SSIM window.
  s9x9_a.png, s9x9_b.png             16-bit gray 9x9.
compare.tsv: a, b, levels, max_abs, mean_abs, psnr, ssim per pair, as tsr_image_compare gives
them: differences in the images' levels (255 for 8-bit, 65535 for 16-bit, the coarser for one
of each), each sample rounded to its level; PSNR with the full scale as peak; SSIM from
skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=levels) on the integer levels. Below 11x11 scikit-image
has no window; the golden is the global SSIM (the whole image as one window, uniform weights,
population moments) written out here in numpy, checked against scikit-image's own
gaussian_weights=False, win_size=9 on the 9x9 pair (one valid window: the whole image).
The pairs of tests/golden/io/cmp_*.png (48x40 RGB) are included at normal size.

Run from the repository root: python3 tools/gen-compare-golden.py
"""
import os
import sys

import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity

OUT = "tests/golden/compare"
IO = "tests/golden/io"


def save(name, arr):
    if arr.dtype == np.uint16:
        Image.fromarray(arr).save(os.path.join(OUT, name), optimize=True)
    else:
        Image.fromarray(arr, "RGB" if arr.ndim == 3 else "L").save(os.path.join(OUT, name),
                                                                    optimize=True)


def load(path):
    """(integer levels as int64, bits per sample) of a PNG."""
    im = Image.open(path)
    a = np.asarray(im)
    bits = 16 if a.dtype == np.uint16 or im.mode.startswith("I;16") else 8
    return a.astype(np.int64), bits


def global_ssim(x, y, L):
    """SSIM of one plane with the whole plane as the window, uniform weights."""
    x = x.astype(np.float64) / L
    y = y.astype(np.float64) / L
    ux, uy = x.mean(), y.mean()
    vx = (x * x).mean() - ux * ux
    vy = (y * y).mean() - uy * uy
    vxy = (x * y).mean() - ux * uy
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))


def figures(pa, pb):
    a, da = load(pa)
    b, db = load(pb)
    L = 255 if 8 in (da, db) else 65535
    # To the common scale: a 16-bit sample on 0..255 is round(k * 255 / 65535) (never a tie).
    if da == 16 and L == 255:
        a = np.rint(a * 255 / 65535).astype(np.int64)
    if db == 16 and L == 255:
        b = np.rint(b * 255 / 65535).astype(np.int64)
    d = np.abs(a - b)
    mse = np.mean((d * d).astype(np.float64))
    psnr = float("inf") if mse == 0 else 10 * np.log10(L * L / mse)
    if a.ndim == 2:
        a, b = a[:, :, None], b[:, :, None]
    h, w, ch = a.shape
    if mse == 0:
        ssim = 1.0
    elif h < 11 or w < 11:
        ssim = np.mean([global_ssim(a[:, :, c], b[:, :, c], L) for c in range(ch)])
    else:
        ssim = structural_similarity(a.astype(np.float64), b.astype(np.float64), channel_axis=2,
                                     gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, data_range=L)
    return L, int(d.max()), float(d.mean()), float(psnr), float(ssim)


def make_images():
    rng = np.random.default_rng(8)
    a8 = rng.integers(0, 256, (12, 16)).astype(np.uint8)
    a8[0, 0], a8[0, 1], a8[0, 2] = 0, 255, 128
    b1 = a8.copy()
    b1[0, 0] = 1  # 0 vs 1
    b1[0, 1] = 254
    b1[5, 7] = a8[5, 7] + 1 if a8[5, 7] < 255 else 254
    b1[9, 3] = a8[9, 3] - 1 if a8[9, 3] > 0 else 1
    b2 = a8.copy()
    b2[0, 2] = 130
    save("l8_a.png", a8)
    save("l8_b1.png", b1)
    save("l8_b2.png", b2)

    a16 = (a8.astype(np.uint32) * 257 + rng.integers(-100, 101, a8.shape)).clip(0, 65535)
    a16 = a16.astype(np.uint16)
    a16[0, 0], a16[0, 1], a16[0, 2] = 0, 65535, 32768
    c1 = a16.copy()
    c1[0, 0] = 1
    c1[0, 1] = 65534
    c1[7, 11] = a16[7, 11] + 1 if a16[7, 11] < 65535 else 65534
    c2 = a16.copy()
    c2[0, 2] = 32770
    save("l16_a.png", a16)
    save("l16_b1.png", c1)
    save("l16_b2.png", c2)

    s = rng.integers(0, 256, (7, 5, 3))
    t = np.clip(s + rng.integers(-20, 21, s.shape), 0, 255)
    save("s5x7_a.png", s.astype(np.uint8))
    save("s5x7_b.png", t.astype(np.uint8))
    u = rng.integers(0, 65536, (9, 9))
    v = np.clip(0.7 * u + 0.3 * rng.integers(0, 65536, u.shape), 0, 65535)
    save("s9x9_a.png", u.astype(np.uint16))
    save("s9x9_b.png", np.rint(v).astype(np.uint16))


def main():
    os.makedirs(OUT, exist_ok=True)
    make_images()
    # The global SSIM above is scikit-image's uniform window when the window is the image.
    u, _ = load(os.path.join(OUT, "s9x9_a.png"))
    v, _ = load(os.path.join(OUT, "s9x9_b.png"))
    ref = structural_similarity(u.astype(np.float64), v.astype(np.float64), win_size=9,
                                gaussian_weights=False, use_sample_covariance=False,
                                data_range=65535)
    mine = global_ssim(u, v, 65535)
    assert abs(ref - mine) < 1e-12, (ref, mine)
    pairs = [
        (IO + "/cmp_a.png", IO + "/cmp_a.png"), (IO + "/cmp_a.png", IO + "/cmp_b.png"),
        (IO + "/cmp_a.png", IO + "/cmp_c.png"), (IO + "/cmp_b.png", IO + "/cmp_c.png"),
        (OUT + "/l8_a.png", OUT + "/l8_b1.png"), (OUT + "/l8_a.png", OUT + "/l8_b2.png"),
        (OUT + "/l16_a.png", OUT + "/l16_b1.png"), (OUT + "/l16_a.png", OUT + "/l16_b2.png"),
        (OUT + "/l8_a.png", OUT + "/l16_a.png"), (OUT + "/l16_b2.png", OUT + "/l8_b1.png"),
        (OUT + "/s5x7_a.png", OUT + "/s5x7_b.png"), (OUT + "/s9x9_a.png", OUT + "/s9x9_b.png"),
        (OUT + "/s5x7_a.png", OUT + "/s5x7_a.png"),
    ]
    rows = []
    for p, q in pairs:
        L, mx, mean, psnr, ssim = figures(p, q)
        rows.append("\t".join([p, q, str(L), str(mx), repr(mean), repr(psnr), repr(ssim)]) + "\n")
    with open(os.path.join(OUT, "compare.tsv"), "w") as fp:
        fp.write("# made by tools/gen-compare-golden.py; paths from the repository root\n")
        fp.write("# a\tb\tlevels\tmax_abs\tmean_abs\tpsnr\tssim\n")
        fp.writelines(rows)
    sys.stdout.writelines(rows)


if __name__ == "__main__":
    main()
