#!/usr/bin/env python3
"""Make the camera-style metadata files of tests/unit/test_meta.c and tests/cli/test_meta.sh
under tests/golden/meta/, with the tools that write these tags in the wild (run from the
repository root; the outputs are committed, so the tests need none of this):

  base.jpg, base.png     a 24x16 picture with four distinct corners (red top left, green top
                         right, blue bottom left, white bottom right) over a gradient, written
                         by Pillow without metadata (JPEG: quality 95, 4:4:4).
  orient-N.jpg/.png      N = 1..8: base.* with the EXIF Orientation tag set by exiftool
                         (`exiftool -Orientation#=N -o out in`: APP1 in a JPEG, eXIf in a PNG).
  orient-N.jpg.ref.png   Pillow's ImageOps.exif_transpose of each (the upright picture, as
  orient-N.png.ref.png   vips autorot gives it), saved as PNG.
  orient-6-le.jpg        base's picture with Orientation 6 in a little-endian ("II") EXIF block
                         written by Pillow (exif=); it decodes as orient-6.jpg does.
  p3.icc                 a Display P3 profile (D65, P3 primaries, the sRGB tone curve) built
                         with lcms2 (cmsCreateRGBProfile, through ctypes).
  icc-p3.jpg, icc-p3.png a saturated 24x16 picture carrying p3.icc (Pillow's icc_profile=).
  icc-p3.*.ref.png       ImageCms.profileToProfile of each to sRGB, perceptual intent.

Needs: exiftool, liblcms2, pip install pillow numpy.
"""
import ctypes
import ctypes.util
import io
import os
import subprocess

import numpy as np
from PIL import Image, ImageCms, ImageOps

OUT = "tests/golden/meta"


def picture():
    """24x16 RGB: a gradient with 4x4 corner blocks of distinct colours."""
    h, w = 16, 24
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full((h, w), 96)], -1)
    a[:4, :4] = (255, 0, 0)
    a[:4, -4:] = (0, 255, 0)
    a[-4:, :4] = (0, 0, 255)
    a[-4:, -4:] = (255, 255, 255)
    return Image.fromarray(a.astype(np.uint8), "RGB")


def saturated():
    """24x16 RGB: hues across, saturation down, with full-value primaries."""
    hsv = np.zeros((16, 24, 3), np.uint8)
    hsv[..., 0] = np.arange(24)[None, :] * 255 // 24
    hsv[..., 1] = 255 - np.arange(16)[:, None] * 12
    hsv[..., 2] = 240
    return Image.fromarray(hsv, "HSV").convert("RGB")


def p3_profile():
    lc = ctypes.CDLL(ctypes.util.find_library("lcms2"))

    class xyY(ctypes.Structure):
        _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double), ("Y", ctypes.c_double)]

    class Triple(ctypes.Structure):
        _fields_ = [("r", xyY), ("g", xyY), ("b", xyY)]

    vp = ctypes.c_void_p
    lc.cmsBuildParametricToneCurve.restype = vp
    lc.cmsBuildParametricToneCurve.argtypes = [vp, ctypes.c_int, ctypes.POINTER(ctypes.c_double)]
    lc.cmsCreateRGBProfile.restype = vp
    lc.cmsCreateRGBProfile.argtypes = [ctypes.POINTER(xyY), ctypes.POINTER(Triple),
                                       ctypes.POINTER(vp)]
    lc.cmsMLUalloc.restype = vp
    lc.cmsMLUalloc.argtypes = [vp, ctypes.c_uint32]
    lc.cmsMLUsetASCII.argtypes = [vp, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]
    lc.cmsWriteTag.argtypes = [vp, ctypes.c_uint32, vp]
    lc.cmsMD5computeID.argtypes = [vp]
    lc.cmsSaveProfileToMem.argtypes = [vp, vp, ctypes.POINTER(ctypes.c_uint32)]
    lc.cmsCloseProfile.argtypes = [vp]
    srgb_trc = (ctypes.c_double * 5)(2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
    curve = lc.cmsBuildParametricToneCurve(None, 4, srgb_trc)
    curves = (vp * 3)(curve, curve, curve)
    white = xyY(0.3127, 0.3290, 1.0)
    prim = Triple(xyY(0.680, 0.320, 1.0), xyY(0.265, 0.690, 1.0), xyY(0.150, 0.060, 1.0))
    h = lc.cmsCreateRGBProfile(ctypes.byref(white), ctypes.byref(prim), curves)
    mlu = lc.cmsMLUalloc(None, 1)
    lc.cmsMLUsetASCII(mlu, b"en", b"US", b"Display P3 (tessera test profile, lcms2)")
    lc.cmsWriteTag(h, 0x64657363, mlu)  # 'desc'
    lc.cmsMD5computeID(h)
    n = ctypes.c_uint32()
    lc.cmsSaveProfileToMem(h, None, ctypes.byref(n))
    buf = ctypes.create_string_buffer(n.value)
    lc.cmsSaveProfileToMem(h, buf, ctypes.byref(n))
    lc.cmsCloseProfile(h)
    return buf.raw[: n.value]


def path(name):
    return os.path.join(OUT, name)


def main():
    os.makedirs(OUT, exist_ok=True)
    pic = picture()
    pic.save(path("base.jpg"), quality=95, subsampling=0)
    pic.save(path("base.png"))
    for ext in ("jpg", "png"):
        for o in range(1, 9):
            f = path(f"orient-{o}.{ext}")
            if os.path.exists(f):
                os.remove(f)
            subprocess.run(["exiftool", "-q", f"-Orientation#={o}", "-o", f, path(f"base.{ext}")],
                           check=True)
            im = Image.open(f)
            assert im.getexif().get(0x0112) == o, (f, im.getexif().get(0x0112))
            up = ImageOps.exif_transpose(im)
            assert up.size == (pic.size if o < 5 else pic.size[::-1])
            up.save(path(f"orient-{o}.{ext}.ref.png"))
    exif = Image.Exif()
    exif.endian = "<"  # Pillow writes big-endian unless asked
    exif[0x0112] = 6
    pic.save(path("orient-6-le.jpg"), quality=95, subsampling=0, exif=exif.tobytes())
    assert exif.tobytes().startswith(b"Exif\x00\x00II*")
    icc = p3_profile()
    with open(path("p3.icc"), "wb") as fp:
        fp.write(icc)
    sat = saturated()
    sat.save(path("icc-p3.jpg"), quality=95, subsampling=0, icc_profile=icc)
    sat.save(path("icc-p3.png"), icc_profile=icc)
    p3 = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    srgb = ImageCms.createProfile("sRGB")
    for ext in ("jpg", "png"):
        im = Image.open(path(f"icc-p3.{ext}"))
        assert im.info.get("icc_profile") == icc
        out = ImageCms.profileToProfile(im, p3, srgb,
                                        renderingIntent=ImageCms.Intent.PERCEPTUAL)
        out.save(path(f"icc-p3.{ext}.ref.png"))
        diff = np.abs(np.asarray(out, int) - np.asarray(im, int)).max()
        print(f"icc-p3.{ext}: P3 -> sRGB moves samples by up to {diff}/255")
    print(f"{OUT}: {len(os.listdir(OUT))} files")


if __name__ == "__main__":
    main()
