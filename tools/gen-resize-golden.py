#!/usr/bin/env python3
"""Golden files for tests/nodes/test_resize.c, written to tests/golden/resize/.

Run from the repository root:  python3 tools/gen-resize-golden.py [SHARED_DIR]
(SHARED_DIR defaults to ../shared; only the photo input comes from it.) The outputs are
committed, so the tests need neither Python nor the shared data.

Made with Pillow 13.0.0, NumPy 2.4.6 and libvips 8.14.1 (the `vips` command line).

Pillow calls, one per channel plane (mode "F" = float32, the mode whose resampler keeps double
weights and float32 samples, with no 8-bit rounding):
    Image.fromarray(plane.astype(np.float32), "F").resize((W, H), F)
    for F in Image.Resampling.NEAREST, BILINEAR, BICUBIC, LANCZOS
    (box=None, reducing_gap=None: the defaults, so no integer pre-reduction).
libvips calls (reductions only; 8.14 enlarges through its corner-grid interpolator whatever the
kernel, so it is no reference for enlargement):
    vips rawload in.raw in.v WIDTH HEIGHT BANDS --format float
    vips reduce in.v out.v IN_W/W IN_H/H --kernel K     K in lanczos3, mitchell, cubic, linear
    vips rawsave out.v out.raw
`vips reduce` rather than `vips resize`: for factors above 1/2 resize just calls reduce, and
below that it would first box-shrink, which is another filter.

Before writing anything the script checks its understanding of both references (and fails if
it is wrong):
  * A float64 model of Tessera's resize (centres aligned, support widened by in/out when
    reducing, taps outside the image dropped and the rest renormalised) reproduces every Pillow
    output to float32 rounding, while the same model with edge extension (clamping) does not:
    that is how we know Pillow drops outside taps.
  * Pillow NEAREST picks floor((x + 0.5) * in / out), except at exact ties where its
    double-accumulated position may fall either side: the NEAREST goldens use sizes with no tie.
  * libvips `reduce` is the same filter with clamp-to-edge and every sampling position rounded to
    1/64 pixel: a model with exactly that reproduces its outputs to 1e-6. So we compare only
    interior pixels (no tap outside the image), and with a tolerance for the 1/64 rounding,
    except for exact factors (1/2) whose positions fall on the 1/64 grid.

File format (.f32): 4 bytes "TF32", then width, height, channels as little-endian uint32, then
width*height*channels little-endian float32 samples, planar (one plane per channel, rows top to
bottom).
"""
import math
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

OUT = os.path.join("tests", "golden", "resize")
SUPPORT = {"bilinear": 1, "bicubic": 2, "mitchell": 2, "lanczos3": 3}
PIL_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos3": Image.Resampling.LANCZOS,
}
VIPS_KERNELS = {"lanczos3": "lanczos3", "mitchell": "mitchell", "bicubic": "cubic",
                "bilinear": "linear"}


def write_f32(path, planes):
    c, h, w = planes.shape
    with open(path, "wb") as f:
        f.write(b"TF32" + struct.pack("<III", w, h, c))
        f.write(planes.astype("<f4").tobytes())


# ---- model of Tessera's resize, float64 ------------------------------------------------------

def kernel(name, t):
    t = abs(t)
    if name == "bilinear":
        return max(0.0, 1.0 - t)
    if name == "bicubic":
        a = -0.5
        if t < 1:
            return ((a + 2) * t - (a + 3)) * t * t + 1
        return (((t - 5) * t + 8) * t - 4) * a if t < 2 else 0.0
    if name == "mitchell":
        b = c = 1.0 / 3.0
        if t < 1:
            return ((12 - 9 * b - 6 * c) * t ** 3 + (-18 + 12 * b + 6 * c) * t * t + 6 - 2 * b) / 6
        if t < 2:
            return ((-b - 6 * c) * t ** 3 + (6 * b + 30 * c) * t * t + (-12 * b - 48 * c) * t
                    + 8 * b + 24 * c) / 6
        return 0.0
    if t >= 3:
        return 0.0
    if t == 0:
        return 1.0
    return math.sin(math.pi * t) * math.sin(math.pi * t / 3) / (math.pi * math.pi * t * t / 3)


def axis_matrix(n_in, n_out, name, edge="drop"):
    """Weights of one axis: rows are output pixels. Taps at t = ((2i+1) n_out - (2o+1) n_in) /
    (2 max(n_in, n_out)), |t| < support."""
    m = max(n_in, n_out)
    s = SUPPORT[name]
    w = np.zeros((n_out, n_in))
    for o in range(n_out):
        lo = ((2 * o + 1) * n_in - 2 * s * m - n_out) // (2 * n_out) + 1
        hi = ((2 * o + 1) * n_in + 2 * s * m - n_out - 1) // (2 * n_out)
        for i in range(lo, hi + 1):
            if edge == "drop" and not 0 <= i < n_in:
                continue
            t = ((2 * i + 1) * n_out - (2 * o + 1) * n_in) / (2 * m)
            w[o, min(max(i, 0), n_in - 1)] += kernel(name, t)
        w[o] /= w[o].sum()
    return w


def model(planes, w, h, name, edge="drop"):
    ax = axis_matrix(planes.shape[2], w, name, edge)
    ay = axis_matrix(planes.shape[1], h, name, edge)
    out = []
    for p in planes.astype(np.float64):
        tmp = (p @ ax.T).astype(np.float32)  # the horizontal pass is stored as float32
        out.append(ay @ tmp.astype(np.float64))
    return np.array(out, dtype=np.float32)


def nearest_ties(n_in, n_out):
    return [o for o in range(n_out) if (2 * o + 1) * n_in % (2 * n_out) == 0]


def vips_model(planes, w, h, name):
    """libvips 8.14 reduce as measured: positions rounded to 1/64 pixel, clamp to edge."""
    def axis(n_in, n_out):
        sh = n_in / n_out
        s = SUPPORT[name]
        m = np.zeros((n_out, n_in))
        for o in range(n_out):
            c = (o + 0.5) * sh - 0.5
            c = math.floor(c) + round((c - math.floor(c)) * 64) / 64
            for i in range(math.floor(c - s * sh) - 1, math.ceil(c + s * sh) + 2):
                m[o, min(max(i, 0), n_in - 1)] += kernel(name, (i - c) / sh)
            m[o] /= m[o].sum()
        return m
    ax, ay = axis(planes.shape[2], w), axis(planes.shape[1], h)
    return np.array([ay @ (p.astype(np.float64) @ ax.T) for p in planes], dtype=np.float32)


# ---- references -------------------------------------------------------------------------------

def pillow(planes, w, h, name):
    return np.array([np.asarray(Image.fromarray(p.astype(np.float32), "F")
                                .resize((w, h), PIL_FILTERS[name])) for p in planes],
                    dtype=np.float32)


def vips(planes, w, h, name, tmp):
    c, ih, iw = planes.shape
    src, mid, dst, raw = (os.path.join(tmp, n) for n in ("in.raw", "in.v", "out.v", "out.raw"))
    np.ascontiguousarray(planes.transpose(1, 2, 0)).astype("<f4").tofile(src)
    subprocess.run(["vips", "rawload", src, mid, str(iw), str(ih), str(c), "--format", "float"],
                   check=True)
    subprocess.run(["vips", "reduce", mid, dst, repr(iw / w), repr(ih / h), "--kernel",
                    VIPS_KERNELS[name]], check=True)
    subprocess.run(["vips", "rawsave", dst, raw], check=True)
    out = np.fromfile(raw, "<f4")
    assert out.size == w * h * c, f"libvips made {out.size} samples, expected {w}x{h}x{c}"
    return out.reshape(h, w, c).transpose(2, 0, 1)


def interior(n_in, n_out, name):
    """Output pixels of one axis whose every tap lies inside the image."""
    m, s = max(n_in, n_out), SUPPORT[name]
    ok = [((2 * o + 1) * n_in - 2 * s * m - n_out) // (2 * n_out) + 1 >= 0 and
          ((2 * o + 1) * n_in + 2 * s * m - n_out - 1) // (2 * n_out) <= n_in - 1
          for o in range(n_out)]
    return np.array(ok)


def main():
    shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join("..", "shared")
    os.makedirs(OUT, exist_ok=True)
    photo_rgb = Image.open(os.path.join(shared, "testdata", "set14", "comic.png")).convert("RGB")
    photo = (np.asarray(photo_rgb, dtype=np.float32)[40:88, 60:124] / 255.0).transpose(2, 0, 1)
    noise = np.random.default_rng(20240531).random((1, 61, 97), dtype=np.float32)
    inputs = {"photo": np.ascontiguousarray(photo), "noise": noise}
    for k, v in inputs.items():
        write_f32(os.path.join(OUT, f"in-{k}.f32"), v)

    lines = []
    # (input, width, height): enlargement, reduction, and one with different x/y factors.
    pil_cases = [("photo", 83, 62), ("photo", 24, 18), ("noise", 133, 84), ("noise", 59, 37),
                 ("noise", 150, 40)]
    for src, w, h in pil_cases:
        planes = inputs[src]
        for name in PIL_FILTERS:
            if name == "nearest":
                if nearest_ties(planes.shape[2], w) or nearest_ties(planes.shape[1], h):
                    continue  # Pillow's rounding at exact ties is not a rule to test against
                ref = pillow(planes, w, h, name)
                ys = [(2 * o + 1) * planes.shape[1] // (2 * h) for o in range(h)]
                xs = [(2 * o + 1) * planes.shape[2] // (2 * w) for o in range(w)]
                assert np.array_equal(ref, planes[:, ys][:, :, xs]), "NEAREST rule"
            else:
                ref = pillow(planes, w, h, name)
                d = np.abs(model(planes, w, h, name) - ref).max()
                assert d < 1e-6, f"model vs Pillow {name} {src} {w}x{h}: {d}"
                dc = np.abs(model(planes, w, h, name, edge="clamp") - ref).max()
                # Enlarging with the triangle, an outside tap only ever pairs with the edge pixel,
                # so dropping it and clamping it agree there; every other case tells them apart.
                same = name == "bilinear" and w >= planes.shape[2] and h >= planes.shape[1]
                assert same or dc > 1e-3, f"Pillow looks edge-extended: {name} {src}: {dc}"
                lines.append(f"| Pillow {name} | {src} {w}x{h} | {d:.1e} | {dc:.1e} |")
            write_f32(os.path.join(OUT, f"pil-{name}-{src}-{w}x{h}.f32"), ref)

    vlines = []
    with tempfile.TemporaryDirectory() as tmp:
        for w, h in [(32, 24), (39, 29), (24, 18)]:
            for name in VIPS_KERNELS:
                ref = vips(photo, w, h, name, tmp)
                dm = np.abs(vips_model(photo, w, h, name) - ref).max()
                assert dm < 1e-6, f"libvips model {name} {w}x{h}: {dm}"
                mask = interior(64, w, name)[None, :] & interior(48, h, name)[:, None]
                d = np.abs(model(photo, w, h, name) - ref)[:, mask]
                vlines.append(f"| {name} | 64x48 -> {w}x{h} | {dm:.1e} | {d.max():.1e} | "
                              f"{d.mean():.1e} | {mask.sum()} |")
                write_f32(os.path.join(OUT, f"vips-{name}-photo-{w}x{h}.f32"), ref)

    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(README.format(pil="\n".join(lines), vips="\n".join(vlines)))
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, to {OUT}")


README = """# Goldens for the resize node

Written by `tools/gen-resize-golden.py` (run from the repository root; it rewrites this file);
read by `tests/nodes/test_resize.c`. Made with Pillow 13.0.0, NumPy 2.4.6 and libvips 8.14.1.
The script header lists the exact calls.

Inputs: `in-photo.f32`, a 64x48 RGB crop of set14 `comic.png` (rows 40..87, columns 60..123,
values /255, as three planes); `in-noise.f32`, 97x61, one channel, uniform noise from NumPy's
`default_rng(20240531)`.

Format (.f32): `TF32`, then width, height, channels as little-endian uint32, then the samples as
little-endian float32, planar.

- `pil-FILTER-INPUT-WxH.f32`: Pillow `Image.resize` on each channel as a mode "F" image.
  NEAREST only for sizes with no exact tie (Pillow accumulates the sampling position in double,
  so a tie may go either way): that leaves the odd-sized noise input, since an even side of 64
  or 48 has ties for every output size these cases use.
- `vips-FILTER-INPUT-WxH.f32`: libvips `reduce` (reductions only), kernels lanczos3, mitchell,
  cubic (= Catmull-Rom), linear.

## What the script verified when it ran

Pillow: a float64 model of Tessera's semantics (taps outside the image dropped, the rest
renormalised) against Pillow, and the same model with edge extension instead:

| reference | case | model with dropped taps | model with clamped taps |
| --- | --- | --- | --- |
{pil}

libvips: its outputs are reproduced by the same filters with every sampling position rounded to
1/64 pixel and clamp-to-edge ("libvips model"); Tessera's model against libvips, over interior
pixels only (every tap inside the image):

| kernel | case | libvips model vs libvips | ours vs libvips: interior max | mean | pixels |
| --- | --- | --- | --- | --- | --- |
{vips}

Exact factors (64x48 -> 32x24) put every position on libvips's 1/64 grid, so there the interior
agrees to float rounding; elsewhere the 1/64 rounding (up to 1/128 pixel of shift) accounts for
the rest.
"""

if __name__ == "__main__":
    main()
