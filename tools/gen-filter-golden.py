#!/usr/bin/env python3
"""Goldens for blur.gaussian, sharpen, color.grayscale, adjust.gamma, adjust.brightness_contrast.

Writes tests/golden/filters/: the inputs, one output per case, and MANIFEST (one case a line:
`node input output [param=value ...]`, with the library versions in its header). The C tests
(tests/nodes/test_<node>.c) read MANIFEST, run the node's reference path on each input and
compare against the output. Everything is committed, so the tests need neither Python nor the
shared test data; rerun this script only to change the cases:

    python3 tools/gen-filter-golden.py [--set14 DIR]   # DIR: the Set14 PNGs (default
                                                       # ../shared/testdata/set14)

Generated with numpy 2.4.6, opencv-python-headless 5.0.0 (cv2.__version__), Pillow 13.0.0
(only to decode the PNG); MANIFEST records the versions of the run that wrote it.

Independent implementations and the exact calls (img: float32, H x W, one plane or H x W x 3):
- blur.gaussian, per plane: cv2.GaussianBlur(plane, (2r+1, 2r+1), sigmaX=sigma, sigmaY=sigma,
  borderType=B, hint=cv2.ALGO_HINT_ACCURATE) with r = ceil(4 sigma) and B = BORDER_REPLICATE
  (edge=clamp), BORDER_REFLECT_101 (mirror), BORDER_CONSTANT with value 0 (zero).
- sharpen (unsharp mask), per colour plane: b = the blur.gaussian call above, then in float64
  d = v - b; out = v where |d| < threshold, else v + amount * d; rounded to float32 once; alpha
  copied. A threshold case is refused when some sample's |d| lies within the blur's tolerance of
  the threshold, since there two correct implementations may decide either way.
- color.grayscale rec601: cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) (RGBA2GRAY for 4 channels, alpha
  copied). rec709 and average: numpy in float64, rounded to float32 once.
- adjust.gamma: numpy float64 pow(max(v, 0), e) with e = float32(1 / gamma), the exponent
  Tessera documents (1/gamma rounded once to float), then rounded to float32.
- adjust.brightness_contrast: GIMP 2.10's gimp:brightness-contrast map in float64
  (b = brightness/2; v = v*(1+b) if b < 0 else v + (1-v)*b; out = (v-0.5)*tan((c+1)*pi/4)+0.5),
  then clip to [0, 1] when clamp is true, rounded to float32; alpha copied.

File format (.f32): 16-byte header "TF32", then width, height, channels as little-endian uint32;
then width*height*channels little-endian float32, planar (plane c, then rows top to bottom), the
layout of a tsr_image.
"""
import argparse
import math
import os
import struct
import sys

import cv2
import numpy as np
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden", "filters")


def write_f32(name, planes):
    """planes: float32 array C x H x W."""
    planes = np.ascontiguousarray(planes, dtype="<f4")
    c, h, w = planes.shape
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(b"TF32" + struct.pack("<III", w, h, c))
        f.write(planes.tobytes())


def radius(sigma):
    return max(1, math.ceil(4.0 * sigma))


BORDERS = {
    "clamp": cv2.BORDER_REPLICATE,
    "mirror": cv2.BORDER_REFLECT_101,
    "zero": cv2.BORDER_CONSTANT,
}


def blur(planes, sigma, edge):
    k = 2 * radius(sigma) + 1
    return np.stack([
        cv2.GaussianBlur(p, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=BORDERS[edge],
                         hint=cv2.ALGO_HINT_ACCURATE)
        for p in planes
    ])


def blur_tol(sigma, max_abs):
    """The C tests' bound on |Tessera's blur - OpenCV's| (tests/nodes/test_blur.gaussian.c)."""
    return 2.0 * (2 * radius(sigma) + 1) * 2.0**-23 * max(max_abs, 1.0)


def sharpen(planes, sigma, amount, threshold, edge):
    n = colour_count(planes.shape[0])
    v = planes[:n].astype(np.float64)
    d = v - blur(planes[:n], sigma, edge).astype(np.float64)
    if threshold > 0:
        margin = np.abs(np.abs(d) - threshold).min()
        tol = blur_tol(sigma, float(np.abs(planes).max()))
        if margin <= tol:
            sys.exit("sharpen: threshold %g is within %.3g of some |in - blur| (tolerance %.3g): "
                     "pick another" % (threshold, margin, tol))
    out = planes.copy()
    out[:n] = np.where(np.abs(d) < threshold, v, v + amount * d).astype(np.float32)
    return out


GRAY_W = {"rec709": (0.2126, 0.7152, 0.0722), "average": (1 / 3, 1 / 3, 1 / 3)}


def grayscale(planes, method):
    c = planes.shape[0]
    if method == "rec601":
        hwc = np.ascontiguousarray(np.moveaxis(planes, 0, -1))
        code = cv2.COLOR_RGB2GRAY if c == 3 else cv2.COLOR_RGBA2GRAY
        grey = cv2.cvtColor(hwc, code)
    else:
        w = GRAY_W[method]
        p = planes.astype(np.float64)
        grey = (w[0] * p[0] + w[1] * p[1] + w[2] * p[2]).astype(np.float32)
    out = [grey] + ([planes[3]] if c == 4 else [])
    return np.stack(out).astype(np.float32)


def colour_count(c):
    return c - 1 if c in (2, 4) else c


def gamma(planes, g):
    e = float(np.float32(1.0 / g))
    out = planes.copy()
    n = colour_count(planes.shape[0])
    p = planes[:n].astype(np.float64)
    out[:n] = np.power(np.maximum(p, 0.0), e).astype(np.float32)
    return out


def brightness_contrast(planes, brightness, contrast, clamp):
    b = brightness / 2.0
    slope = math.tan((contrast + 1.0) * math.pi / 4.0)
    out = planes.copy()
    n = colour_count(planes.shape[0])
    v = planes[:n].astype(np.float64)
    v = v * (1.0 + b) if b < 0 else v + (1.0 - v) * b
    v = (v - 0.5) * slope + 0.5
    if clamp:
        v = np.clip(v, 0.0, 1.0)
    out[:n] = v.astype(np.float32)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set14", default=os.path.join("..", "shared", "testdata", "set14"))
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith(".f32") or f == "MANIFEST":
            os.remove(os.path.join(OUT, f))

    # photo: 48x40 RGB crop of Set14 baboon (fur and eyes: edges and texture), 8-bit / 255.
    rgb = np.asarray(Image.open(os.path.join(args.set14, "baboon.png")).convert("RGB"))
    photo = (np.moveaxis(rgb[100:140, 200:248], -1, 0).astype(np.float32) / 255.0)
    # small: 9x6 grey noise, smaller than most blur radii below, so mirror folds many times.
    rng = np.random.default_rng(20240601)
    small = rng.random((1, 6, 9), dtype=np.float32)
    # hdr: 16x8 RGBA, colour in [-0.5, 1.5) (what earlier nodes may hand on), alpha in [0, 1).
    hdr = np.concatenate([rng.random((3, 8, 16), dtype=np.float32) * 2.0 - 0.5,
                          rng.random((1, 8, 16), dtype=np.float32)]).astype(np.float32)
    inputs = {"photo": photo, "small": small, "hdr": hdr}
    for name, img in inputs.items():
        write_f32("in_%s.f32" % name, img)

    cases = []

    def case(node, inp, out_name, result, **params):
        write_f32(out_name, result)
        kv = " ".join("%s=%s" % (k, str(v).lower() if isinstance(v, bool) else v)
                      for k, v in params.items())
        cases.append("%s in_%s.f32 %s %s" % (node, inp, out_name, kv))

    for sigma in (0.6, 1.5, 3.2):
        for edge in BORDERS:
            case("blur.gaussian", "photo", "blur_photo_s%g_%s.f32" % (sigma, edge),
                 blur(photo, sigma, edge), sigma=sigma, edge=edge)
    for sigma in (4, 30):
        for edge in BORDERS:
            case("blur.gaussian", "small", "blur_small_s%g_%s.f32" % (sigma, edge),
                 blur(small, sigma, edge), sigma=sigma, edge=edge)
    case("blur.gaussian", "hdr", "blur_hdr_s1_mirror.f32", blur(hdr, 1.0, "mirror"),
         sigma=1, edge="mirror")

    # amount 10 and sigma 30 (radius 120 on a 9x6 image) are the ends of the ranges; the
    # thresholds leave between a quarter and nine tenths of the samples unsharpened.
    for sigma, amount, threshold, edge in ((1.0, 1.0, 0, "clamp"), (0.6, 3.0, 0, "zero"),
                                           (2.5, 0.7, 0.05, "mirror"), (1.5, 10.0, 0.1, "clamp")):
        case("sharpen", "photo", "sharpen_photo_s%g_a%g_t%g_%s.f32" % (sigma, amount, threshold,
                                                                         edge),
             sharpen(photo, sigma, amount, threshold, edge), sigma=sigma, amount=amount,
             threshold=threshold, edge=edge)
    for sigma, edge in ((4, "mirror"), (30, "zero")):
        case("sharpen", "small", "sharpen_small_s%g_a1.5_t0_%s.f32" % (sigma, edge),
             sharpen(small, sigma, 1.5, 0, edge), sigma=sigma, amount=1.5, threshold=0, edge=edge)
    case("sharpen", "hdr", "sharpen_hdr_s1_a2_t0.2_mirror.f32",
         sharpen(hdr, 1.0, 2.0, 0.2, "mirror"), sigma=1, amount=2, threshold=0.2, edge="mirror")

    for method in ("rec601", "rec709", "average"):
        case("color.grayscale", "photo", "gray_photo_%s.f32" % method,
             grayscale(photo, method), method=method)
    case("color.grayscale", "hdr", "gray_hdr_rec601.f32", grayscale(hdr, "rec601"),
         method="rec601")

    for g in (0.45, 2.2):
        case("adjust.gamma", "photo", "gamma_photo_%g.f32" % g, gamma(photo, g), gamma=g)
    for g in (0.8, 3):
        case("adjust.gamma", "hdr", "gamma_hdr_%g.f32" % g, gamma(hdr, g), gamma=g)

    for b, c in ((0.3, 0.2), (-0.4, 0.5), (0.0, -0.6)):
        case("adjust.brightness_contrast", "photo", "bc_photo_%g_%g.f32" % (b, c),
             brightness_contrast(photo, b, c, True), brightness=b, contrast=c, clamp=True)
    for clamp in (True, False):
        case("adjust.brightness_contrast", "hdr", "bc_hdr_0.2_0.4_%s.f32" % str(clamp).lower(),
             brightness_contrast(hdr, 0.2, 0.4, clamp), brightness=0.2, contrast=0.4,
             clamp=clamp)

    with open(os.path.join(OUT, "MANIFEST"), "w") as f:
        f.write("# Written by tools/gen-filter-golden.py: node input output [param=value ...]\n")
        f.write("# python %s, numpy %s, opencv %s, Pillow %s\n" % (
            sys.version.split()[0], np.__version__, cv2.__version__, Image.__version__))
        for line in cases:
            f.write(line.rstrip() + "\n")
    print("wrote %d cases to %s" % (len(cases), os.path.normpath(OUT)))


if __name__ == "__main__":
    main()
