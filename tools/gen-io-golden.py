#!/usr/bin/env python3
"""Make the goldens of tests/unit/test_image_io.c and tests/unit/test_compare.c under
tests/golden/io/, from independent implementations (run from the repository root; the outputs
are committed, so the tests need none of this):

  pngsuite.tsv   every valid PngSuite image (x* are the invalid ones) decoded by pypng, a pure
                 Python decoder: file, width, height, channels, bit depth, SHA-256 of the
                 samples as big-endian uint16, planar (channel, row, column). The expansion
                 follows libpng's: palette -> RGB, tRNS -> alpha (0 or max), 1/2/4-bit gray ->
                 8-bit (v * 255 / (2^d - 1)), 16-bit stays 16-bit; no gamma, no sBIT shift.
  prog.jpg, gray.jpg, cmyk.jpg
                 small JPEGs written by Pillow (progressive YCbCr, grayscale, Adobe CMYK) from
                 a procedural picture, so the project ships no third-party image.
  *.pillow.png   Pillow's decode of those and of libjpeg-turbo's testorig and testimgint
                 (CMYK converted with Pillow's (255-C)(255-K)/255 rule), stored losslessly.
                 testimgari.jpg must decode to testimgint's pixels (the same coefficients,
                 arithmetic-coded): the script checks that, and the test reuses the golden.
  cmp_a/b/c.png  a procedural picture, a slightly perturbed copy and a very different picture;
                 tools/gen-compare-golden.py computes their comparison figures.

Needs: pip install pypng pillow numpy. Shared test data: $TSR_SHARED or ../shared.
"""
import glob
import hashlib
import os

import numpy as np
import png  # pypng
from PIL import Image

OUT = "tests/golden/io"
SHARED = os.environ.get("TSR_SHARED") or "../shared"


def pypng_planes(path):
    """Decode with pypng's raw reader and expand like libpng's transforms.
    Returns (planes uint32 array [c, h, w], bit depth 8 or 16)."""
    r = png.Reader(filename=path)
    w, h, rows, info = r.read()
    a = np.array([list(row) for row in rows], dtype=np.uint32).reshape(h, -1)
    depth = info["bitdepth"]
    planes = info["planes"]
    if not info["greyscale"] and planes == 1:  # colour type 3
        # (r,g,b) entries, or (r,g,b,a) with tRNS expanded (missing alphas are 255)
        px = np.array(info["palette"], dtype=np.uint32)[a]
        return px.transpose(2, 0, 1), 8
    a = a.reshape(h, w, planes)
    maxv = (1 << depth) - 1
    out_depth = 16 if depth == 16 else 8
    alpha = None
    if info.get("transparent") is not None and not info["alpha"]:
        t = np.array(info["transparent"], dtype=np.uint32).reshape(1, 1, -1)
        alpha = np.where(np.all(a == t, axis=2), 0, (1 << out_depth) - 1).astype(np.uint32)
    if depth < 8:
        a = a * (255 // maxv)
    px = a.transpose(2, 0, 1)
    if alpha is not None:
        px = np.concatenate([px, alpha[None]], 0)
    return px, out_depth


def sample_hash(px):
    return hashlib.sha256(px.astype(">u2").tobytes()).hexdigest()


def gen_pngsuite():
    rows = []
    files = sorted(glob.glob(os.path.join(SHARED, "testdata/pngsuite/*.png")))
    for f in files:
        name = os.path.basename(f)
        if name.startswith("x"):
            continue
        px, depth = pypng_planes(f)
        c, h, w = px.shape
        rows.append(f"{name}\t{w}\t{h}\t{c}\t{depth}\t{sample_hash(px)}\n")
    with open(os.path.join(OUT, "pngsuite.tsv"), "w") as fp:
        fp.write("# file\twidth\theight\tchannels\tbit_depth\tsha256(planar big-endian uint16)\n")
        fp.writelines(rows)
    print(f"pngsuite.tsv: {len(rows)} images")


def picture(w, h, seed, kind):
    """A procedural picture with gradients, edges and fine texture (values 0..1, h x w x 3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    if kind == 0:
        img = np.stack([0.5 + 0.4 * np.sin(x / 7.0 + y / 11.0), 0.3 + 0.6 * y / h,
                        0.8 - 0.6 * x / w], -1)
        disk = (np.hypot(x - w * 0.6, y - h * 0.4) < min(w, h) * 0.25)[..., None]
        img = np.where(disk, [0.9, 0.2, 0.15], img)
        img[(x.astype(int) % 5 == 0) & (y > h * 0.7)] = 0.05
    else:
        img = np.stack([((x // 6 + y // 6) % 2) * 0.8 + 0.1, 0.5 + 0.5 * np.cos(y / 3.0),
                        np.clip(1 - np.hypot(x - w / 3, y - h / 2) / w, 0, 1)], -1)
    img += rng.normal(0, 0.02, img.shape)
    return np.clip(img, 0, 1)


def to_u8(img):
    return (img * 255 + 0.5).astype(np.uint8)


def gen_jpeg():
    w, h = 61, 43  # not multiples of the 16x16 MCU: partial blocks on both edges
    rgb = to_u8(picture(w, h, 1, 0))
    Image.fromarray(rgb, "RGB").save(os.path.join(OUT, "prog.jpg"), quality=90,
                                     progressive=True)
    Image.fromarray(rgb, "RGB").convert("L").save(os.path.join(OUT, "gray.jpg"), quality=90)
    f = picture(w, h, 2, 1)
    cmyk = to_u8(np.concatenate([f, (0.6 * np.sin(np.mgrid[0:h, 0:w][1] / 9.0) ** 2)[..., None]],
                                -1))
    Image.fromarray(cmyk, "CMYK").save(os.path.join(OUT, "cmyk.jpg"), quality=90)

    src = {n: os.path.join(OUT, n) for n in ("prog.jpg", "gray.jpg", "cmyk.jpg")}
    lj = os.path.join(SHARED, "testdata/libjpeg-turbo")
    for n in ("testorig.jpg", "testimgint.jpg"):
        src[n] = os.path.join(lj, n)
    # testimgari.jpg holds testimgint's coefficients, arithmetic-coded: one golden serves both.
    ari = np.asarray(Image.open(os.path.join(lj, "testimgari.jpg")))
    assert np.array_equal(ari, np.asarray(Image.open(src["testimgint.jpg"])))
    for n, path in src.items():
        im = Image.open(path)
        if im.mode == "CMYK":
            im = im.convert("RGB")
        im.save(os.path.join(OUT, n.replace(".jpg", ".pillow.png")), optimize=True)
        print(f"{n}: {im.mode} {im.size}")


def gen_compare():
    w, h = 48, 40
    a = picture(w, h, 3, 0)
    rng = np.random.default_rng(4)
    a8 = to_u8(a)
    b8 = np.clip(a8.astype(int) + rng.integers(-3, 4, a8.shape), 0, 255).astype(np.uint8)
    c8 = to_u8(picture(w, h, 5, 1))
    for n, v in (("cmp_a.png", a8), ("cmp_b.png", b8), ("cmp_c.png", c8)):
        Image.fromarray(v, "RGB").save(os.path.join(OUT, n), optimize=True)


def main():
    os.makedirs(OUT, exist_ok=True)
    gen_pngsuite()
    gen_jpeg()
    gen_compare()


if __name__ == "__main__":
    main()
