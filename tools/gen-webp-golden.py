#!/usr/bin/env python3
"""Make the goldens of tests/unit/test_codec_webp.c under tests/golden/webp/, with encoders and
decoders other than Tessera's (run from the repository root; the outputs are committed, so the
tests need none of this):

  lossless_rgb.webp    48x32 RGB, lossless, written by Pillow (its own bundled libwebp)
  lossless_rgba.webp   48x32 RGBA, lossless with exact=True (colours under alpha 0 kept), Pillow
  gray.webp            40x24 gray source (mode L), lossless, Pillow: WebP stores it as RGB
  meta.webp            37x23 RGB lossless, Pillow, with an ICCP chunk (meta.icc, an sRGB profile
                       made by LittleCMS through Pillow's ImageCms) and an EXIF chunk holding the
                       TIFF structure meta.exif (no "Exif\\0\\0" prefix)
  meta_prefixed.webp   lossy_rgb.webp with the same ICC profile and an EXIF chunk that starts with
                       "Exif\\0\\0" (as some writers make it), added by webpmux
  lossy_rgb.webp       48x32 RGB, lossy, by cwebp -q 80
  lossy_rgba.webp      37x23 RGBA, lossy colour with lossless alpha, by cwebp -q 80 -alpha_q 100
  animated.webp        two 16x16 frames, by img2webp (refused by the decoder)
  *.ref.png            the expected pixels: for lossless files the source picture itself
                       (the script checks that dwebp and Pillow both decode to it exactly); for
                       lossy files dwebp's decode (dwebp -png), which is libwebp's reference
                       decoder (the script prints how far Pillow's decode is from it)

Pictures are procedural, so the project ships no third-party image. Needs: Pillow (with WebP
and ImageCms), numpy, and the webp tools (cwebp, dwebp, webpmux, img2webp).
"""
import os
import subprocess
import tempfile

import numpy as np
from PIL import Image, ImageCms

OUT = "tests/golden/webp"


def picture(w, h, channels, seed):
    """Smooth gradients with a few sharp edges; alpha (if any) a ramp that reaches 0 and 255."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    rng = np.random.default_rng(seed)
    planes = []
    for c in range(3):
        fx, fy = rng.uniform(0.05, 0.25, 2)
        v = 128 + 90 * np.sin(fx * x + c) * np.cos(fy * y - c) + 20 * ((x + 2 * y + 5 * c) % 9 > 6)
        planes.append(v)
    if channels == 4:
        a = np.clip((x / (w - 1)) * 300 - 20, 0, 255)
        planes.append(a)
    a = np.clip(np.rint(np.stack(planes, axis=-1)), 0, 255).astype(np.uint8)
    return a


def run(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def dwebp(path, tmp):
    out = os.path.join(tmp, "dwebp.png")
    run("dwebp", path, "-nodither", "-o", out)  # PNG, no dithering (as the engine)
    return np.asarray(Image.open(out))


def pillow_decode(path):
    im = Image.open(path)
    im.load()
    return np.asarray(im)


def save_ref(name, pixels):
    mode = {3: "RGB", 4: "RGBA"}[pixels.shape[2]]
    Image.fromarray(pixels, mode).save(os.path.join(OUT, name + ".ref.png"))


def check_lossless(name, src, tmp):
    path = os.path.join(OUT, name + ".webp")
    for who, got in (("dwebp", dwebp(path, tmp)), ("Pillow", pillow_decode(path))):
        assert got.shape == src.shape and (got == src).all(), f"{name}: {who} differs"
    save_ref(name, src)


def lossy_ref(name, tmp):
    path = os.path.join(OUT, name + ".webp")
    ref = dwebp(path, tmp)
    pil = pillow_decode(path)
    diff = int(np.abs(ref.astype(int) - pil.astype(int)).max())
    print(f"{name}: Pillow's decode is within {diff} level(s) of dwebp's")
    save_ref(name, ref)


def main():
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        rgb = picture(48, 32, 3, 1)
        Image.fromarray(rgb, "RGB").save(os.path.join(OUT, "lossless_rgb.webp"), lossless=True)
        check_lossless("lossless_rgb", rgb, tmp)

        rgba = picture(48, 32, 4, 2)
        Image.fromarray(rgba, "RGBA").save(
            os.path.join(OUT, "lossless_rgba.webp"), lossless=True, exact=True
        )
        check_lossless("lossless_rgba", rgba, tmp)

        gray = picture(40, 24, 3, 3)[:, :, 0]
        Image.fromarray(gray, "L").save(os.path.join(OUT, "gray.webp"), lossless=True)
        check_lossless("gray", np.repeat(gray[:, :, None], 3, axis=2), tmp)

        icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        exif = Image.Exif()
        exif[0x010F] = "Tessera test"  # Make
        exif[0x0112] = 1  # Orientation: as stored
        exif_jpeg = exif.tobytes()  # "Exif\0\0" + TIFF
        assert exif_jpeg.startswith(b"Exif\x00\x00")
        tiff = exif_jpeg[6:]
        with open(os.path.join(OUT, "meta.icc"), "wb") as f:
            f.write(icc)
        with open(os.path.join(OUT, "meta.exif"), "wb") as f:
            f.write(tiff)
        odd = picture(37, 23, 3, 4)
        Image.fromarray(odd, "RGB").save(
            os.path.join(OUT, "meta.webp"), lossless=True, icc_profile=icc, exif=tiff
        )
        check_lossless("meta", odd, tmp)

        src = os.path.join(tmp, "rgb.png")
        Image.fromarray(rgb, "RGB").save(src)
        run("cwebp", "-q", "80", src, "-o", os.path.join(OUT, "lossy_rgb.webp"))
        lossy_ref("lossy_rgb", tmp)

        src = os.path.join(tmp, "rgba.png")
        Image.fromarray(picture(37, 23, 4, 5), "RGBA").save(src)
        run("cwebp", "-q", "80", "-alpha_q", "100", src, "-o", os.path.join(OUT, "lossy_rgba.webp"))
        lossy_ref("lossy_rgba", tmp)

        icc_file = os.path.join(OUT, "meta.icc")
        exif_file = os.path.join(tmp, "exif.bin")
        with open(exif_file, "wb") as f:
            f.write(exif_jpeg)
        step = os.path.join(tmp, "step.webp")
        run("webpmux", "-set", "icc", icc_file, os.path.join(OUT, "lossy_rgb.webp"), "-o", step)
        run("webpmux", "-set", "exif", exif_file, step, "-o", os.path.join(OUT, "meta_prefixed.webp"))
        lossy_ref("meta_prefixed", tmp)

        frames = []
        for k in range(2):
            p = os.path.join(tmp, f"frame{k}.png")
            Image.fromarray(picture(16, 16, 3, 10 + k), "RGB").save(p)
            frames.append(p)
        run("img2webp", "-lossless", *frames, "-o", os.path.join(OUT, "animated.webp"))

    for name in sorted(os.listdir(OUT)):
        print(f"{name:24s} {os.path.getsize(os.path.join(OUT, name)):6d} bytes")


if __name__ == "__main__":
    main()
