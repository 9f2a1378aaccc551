#!/usr/bin/env python3
"""Make the goldens of tests/unit/test_codec_tiff.c under tests/golden/tiff/: small TIFF files
written by other implementations than ours (Pillow, tifffile, vips, tiffcp), each beside the
pixels it holds (run from the repository root; the outputs are committed, so the tests need none
of this):

  NAME.tif     the file, written by the tool its entry in CASES names
  REF.png      what an integer file holds, written by a minimal PNG writer here (zlib, filter
               0), 8 or 16-bit: the test compares the decoded levels exactly; for the lossy
               JPEG-compressed files, *.vips.png: vips's decode of them
  REF.f32      what a float file holds (or an un-premultiplied associated-alpha file): "TF32",
               width, height, channels as little-endian uint32, then planar little-endian
               float32 (tests/common/testutil.h tu_read_f32): the test compares bit for bit
  index.tsv    name, reference, channels, bit depth, what the file is
  cmyk.tif, int16.tif   files the decoder refuses as unsupported (CMYK, signed samples)
  private_tag.tif       rgb8.png with a private tag libtiff warns about

Pictures are procedural (no third-party image). Needs: pip install pillow numpy tifffile;
`vips` and `tiffcp` (libtiff-tools) on PATH.
"""
import os
import struct
import subprocess
import zlib

import numpy as np
import tifffile
from PIL import Image

OUT = "tests/golden/tiff"
W, H = 37, 23


def picture(ch, maxv, seed):
    """A smooth ramp plus noise, [H, W, ch] in 0..maxv, every level pattern covered roughly."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    planes = []
    for c in range(ch):
        base = (x * (c + 1) * 7 + y * (5 - c) * 11) / (W * 7 + H * 11 * 2)
        v = (base % 1.0) * maxv + rng.integers(-maxv // 16, maxv // 16 + 1, size=(H, W))
        planes.append(np.clip(v, 0, maxv))
    a = np.stack(planes, axis=2).round().astype(np.uint16 if maxv > 255 else np.uint8)
    a[0, 0] = 0
    a[0, 1] = maxv  # the extremes appear
    return a


def float_picture(ch, seed):
    """Floats inside and outside 0..1: negatives, above one, denormals, signed zero."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0.5, 0.8, size=(H, W, ch)).astype(np.float32)
    flat = a.reshape(-1)
    specials = np.array([0.0, -0.0, 1.0, -1.5, 3.75, 1e-40, -1e-42, 1.4e-45, 1e30, -2.5e-8],
                        dtype=np.float32)
    flat[: len(specials)] = specials
    return a


def write_png(path, a):
    """[H, W, ch] uint8 or uint16 as a PNG: colour type from ch, depth from the dtype."""
    h, w, ch = a.shape
    depth = 16 if a.dtype == np.uint16 else 8
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[ch]
    raw = a.astype(">u2" if depth == 16 else "u1").reshape(h, -1).tobytes()
    stride = len(raw) // h
    data = b"".join(b"\0" + raw[r * stride:(r + 1) * stride] for r in range(h))

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body +
                struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(data, 9)))
        f.write(chunk(b"IEND", b""))


def write_f32(path, a):
    """[H, W, ch] float32 as TF32, planar."""
    h, w, ch = a.shape
    with open(path, "wb") as f:
        f.write(b"TF32" + struct.pack("<III", w, h, ch))
        f.write(np.ascontiguousarray(a.transpose(2, 0, 1)).astype("<f4").tobytes())


def run(*cmd):
    subprocess.run(cmd, check=True)


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    p = lambda name: os.path.join(OUT, name)  # noqa: E731
    rows = []

    def add(name, ref, ch, depth, what):
        rows.append((name, ref, ch, depth, what))

    # 8-bit RGB from Pillow: none, LZW, Deflate, PackBits; vips: tiled; tiffcp: separate planes.
    rgb8 = picture(3, 255, 1)
    write_png(p("rgb8.png"), rgb8)
    im = Image.fromarray(rgb8, "RGB")
    for comp, tag in [(None, "none"), ("tiff_lzw", "lzw"), ("tiff_adobe_deflate", "deflate"),
                      ("packbits", "packbits")]:
        im.save(p(f"rgb8_{tag}.tif"), compression=comp)
        add(f"rgb8_{tag}.tif", "rgb8.png", 3, 8, f"Pillow, 8-bit RGB, compression {tag}")
    run("vips", "tiffsave", p("rgb8.png"), p("rgb8_tiled.tif"), "--tile", "--tile-width", "16",
        "--tile-height", "16", "--compression", "lzw", "--predictor", "horizontal")
    add("rgb8_tiled.tif", "rgb8.png", 3, 8, "vips, 16x16 tiles, LZW with predictor")
    run("tiffcp", "-p", "separate", "-c", "zip", p("rgb8_none.tif"), p("rgb8_separate.tif"))
    add("rgb8_separate.tif", "rgb8.png", 3, 8, "tiffcp, separate planes, Deflate")
    run("tiffcp", "-p", "separate", "-t", "-w", "16", "-l", "16", p("rgb8_none.tif"),
        p("rgb8_separate_tiled.tif"))
    add("rgb8_separate_tiled.tif", "rgb8.png", 3, 8, "tiffcp, separate planes in 16x16 tiles")
    tifffile.imwrite(p("rgb8_strips4.tif"), rgb8, photometric="rgb", rowsperstrip=4,
                     compression="zlib")
    add("rgb8_strips4.tif", "rgb8.png", 3, 8, "tifffile, strips of 4 rows, Deflate, IFD first")
    run("tiffcp", "-r", "5", "-c", "lzw:2", p("rgb8_none.tif"), p("rgb8_strips5.tif"))
    add("rgb8_strips5.tif", "rgb8.png", 3, 8, "tiffcp, strips of 5 rows, LZW with predictor")

    # JPEG-compressed (lossy): RGB from vips, subsampled YCbCr from tiffcp; the references are
    # vips's own decodes of the same files.
    run("vips", "tiffsave", p("rgb8.png"), p("rgb8_jpeg.tif"), "--compression", "jpeg",
        "--Q", "95")
    run("vips", "copy", p("rgb8_jpeg.tif"), p("rgb8_jpeg.vips.png"))
    add("rgb8_jpeg.tif", "rgb8_jpeg.vips.png", 3, 8, "vips, JPEG-compressed RGB")
    run("tiffcp", "-c", "jpeg:95", "-r", "16", p("rgb8_none.tif"), p("ycbcr_jpeg.tif"))
    run("vips", "copy", p("ycbcr_jpeg.tif"), p("ycbcr_jpeg.vips.png"))
    add("ycbcr_jpeg.tif", "ycbcr_jpeg.vips.png", 3, 8, "tiffcp, JPEG-compressed YCbCr 4:2:0")

    # 8-bit gray, gray+alpha (tifffile), min-is-white (tifffile stores the levels as given).
    g8 = picture(1, 255, 2)
    write_png(p("gray8.png"), g8)
    Image.fromarray(g8[:, :, 0], "L").save(p("gray8.tif"), compression="tiff_lzw")
    add("gray8.tif", "gray8.png", 1, 8, "Pillow, 8-bit gray, LZW")
    tifffile.imwrite(p("gray8_miniswhite.tif"), 255 - g8[:, :, 0], photometric="miniswhite")
    add("gray8_miniswhite.tif", "gray8.png", 1, 8, "tifffile, min-is-white (inverted levels)")
    ga8 = picture(2, 255, 3)
    write_png(p("ga8.png"), ga8)
    tifffile.imwrite(p("ga8.tif"), ga8, photometric="minisblack", extrasamples=["unassalpha"],
                     planarconfig="contig")
    add("ga8.tif", "ga8.png", 2, 8, "tifffile, gray + unassociated alpha")

    # 16-bit: gray (big-endian too), RGBA contiguous and separate.
    g16 = picture(1, 65535, 4)
    write_png(p("gray16.png"), g16)
    tifffile.imwrite(p("gray16.tif"), g16[:, :, 0], photometric="minisblack",
                     compression="zlib")
    add("gray16.tif", "gray16.png", 1, 16, "tifffile, 16-bit gray, Deflate")
    tifffile.imwrite(p("gray16_be.tif"), g16[:, :, 0], photometric="minisblack", byteorder=">")
    add("gray16_be.tif", "gray16.png", 1, 16, "tifffile, 16-bit gray, big-endian (MM)")
    tifffile.imwrite(p("gray16_bigtiff.tif"), g16[:, :, 0], photometric="minisblack",
                     bigtiff=True, byteorder=">")
    add("gray16_bigtiff.tif", "gray16.png", 1, 16, "tifffile, 16-bit gray, BigTIFF, MM")
    rgba16 = picture(4, 65535, 5)
    write_png(p("rgba16.png"), rgba16)
    tifffile.imwrite(p("rgba16.tif"), rgba16, photometric="rgb", extrasamples=["unassalpha"],
                     planarconfig="contig", compression="zlib")
    add("rgba16.tif", "rgba16.png", 4, 16, "tifffile, 16-bit RGBA, unassociated, Deflate")
    tifffile.imwrite(p("rgba16_separate.tif"), rgba16.transpose(2, 0, 1), photometric="rgb",
                     extrasamples=["unassalpha"], planarconfig="separate", byteorder=">")
    add("rgba16_separate.tif", "rgba16.png", 4, 16, "tifffile, 16-bit RGBA, separate, MM")

    # 32-bit float: gray and RGB, values outside 0..1 and denormals; strips and tiles.
    fg = float_picture(1, 6)
    write_f32(p("grayf.f32"), fg)
    tifffile.imwrite(p("grayf.tif"), fg[:, :, 0], photometric="minisblack")
    add("grayf.tif", "grayf.f32", 1, 32, "tifffile, float gray, uncompressed")
    tifffile.imwrite(p("grayf_be.tif"), fg[:, :, 0], photometric="minisblack", byteorder=">",
                     compression="zlib")
    add("grayf_be.tif", "grayf.f32", 1, 32, "tifffile, float gray, big-endian, Deflate")
    frgb = float_picture(3, 7)
    write_f32(p("rgbf.f32"), frgb)
    tifffile.imwrite(p("rgbf.tif"), frgb, photometric="rgb", compression="zlib")
    add("rgbf.tif", "rgbf.f32", 3, 32, "tifffile, float RGB, Deflate")
    tifffile.imwrite(p("rgbf_tiled.tif"), frgb, photometric="rgb", tile=(16, 16))
    add("rgbf_tiled.tif", "rgbf.f32", 3, 32, "tifffile, float RGB, 16x16 tiles")
    run("tiffcp", "-c", "lzw:3", p("rgbf.tif"), p("rgbf_pred3.tif"))
    add("rgbf_pred3.tif", "rgbf.f32", 3, 32, "tiffcp, float RGB, LZW + floating-point predictor")

    # Palette (Pillow: 8-bit colour map entries, times 257) and 1-bit bilevel.
    pal = (picture(1, 255, 8)[:, :, 0] // 32).astype(np.uint8)
    colours = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0],
                        [10, 20, 30], [200, 100, 50], [255, 255, 255]], dtype=np.uint8)
    write_png(p("palette.png"), colours[pal])
    pim = Image.fromarray(pal, "P")
    pim.putpalette(colours.reshape(-1).tolist())
    pim.save(p("palette.tif"))
    add("palette.tif", "palette.png", 3, 8, "Pillow, 8-bit palette")
    bits = (picture(1, 255, 9)[:, :, 0] > 127)
    write_png(p("bilevel.png"), (bits * 255).astype(np.uint8)[:, :, None])
    Image.fromarray(bits).save(p("bilevel.tif"))
    add("bilevel.tif", "bilevel.png", 1, 8, "Pillow, 1-bit")
    run("tiffcp", "-c", "g4", p("bilevel.tif"), p("bilevel_g4.tif"))
    add("bilevel_g4.tif", "bilevel.png", 1, 8, "tiffcp, 1-bit, CCITT Group 4")

    # Associated alpha: stored premultiplied; the reference is c / a in float32, as decoded.
    straight = picture(4, 255, 10)
    a = straight[:, :, 3:4].astype(np.uint32)
    prem = ((straight[:, :, :3].astype(np.uint32) * a + 127) // 255).astype(np.uint8)
    stored = np.concatenate([prem, straight[:, :, 3:4]], axis=2)
    tifffile.imwrite(p("rgba8_assoc.tif"), stored, photometric="rgb",
                     extrasamples=["assocalpha"], planarconfig="contig")
    f = stored.astype(np.float32) / np.float32(255)
    al = f[:, :, 3:4]
    un = np.where(al > 0, f[:, :, :3] / np.where(al > 0, al, np.float32(1)), f[:, :, :3])
    un = np.minimum(un, np.float32(1)).astype(np.float32)
    write_f32(p("rgba8_assoc.f32"), np.concatenate([un, al], axis=2).astype(np.float32))
    add("rgba8_assoc.tif", "rgba8_assoc.f32", 4, 8, "tifffile, associated alpha: c / a")

    # The first page of two; an Orientation tag (6: rotate 90 clockwise), stated not applied.
    tifffile.imwrite(p("two_pages.tif"), np.stack([g8[:, :, 0], 255 - g8[:, :, 0]]),
                     photometric="minisblack")
    add("two_pages.tif", "gray8.png", 1, 8, "tifffile, two pages: the first is read")
    tifffile.imwrite(p("orient6.tif"), rgb8, photometric="rgb",
                     extratags=[(274, "H", 1, 6, True)])
    add("orient6.tif", "rgb8.png", 3, 8, "tifffile, Orientation 6 (pixels as stored)")

    # Refused (not in the index): CMYK, signed 16-bit.
    tifffile.imwrite(p("cmyk.tif"), picture(4, 255, 11), photometric="separated")
    tifffile.imwrite(p("int16.tif"), picture(1, 255, 12)[:, :, 0].astype(np.int16),
                     photometric="minisblack")

    # A private tag libtiff warns about (fail_on warning refuses the file, the default loads it).
    tifffile.imwrite(p("private_tag.tif"), rgb8, photometric="rgb",
                     extratags=[(65000, "H", 1, 7, True)])

    with open(p("index.tsv"), "w") as f:
        for r in rows:
            f.write("\t".join(str(x) for x in r) + "\n")
    total = sum(os.path.getsize(p(n)) for n in os.listdir(OUT))
    print(f"{len(rows)} files, {total} bytes in {OUT}")


if __name__ == "__main__":
    main()
