#!/usr/bin/env python3
"""Reference outputs of the bundled super-resolution models, written to tests/golden/models/.

Run from the repository root:  python3 tools/gen-model-golden.py [SHARED_DIR]
(SHARED_DIR defaults to ../shared: models/ and testdata/ come from it.) The outputs are
committed, so the tests need neither Python, ncnn nor the shared test images (they do need the
models, which the tests read from the shared folder).

Each model runs through ncnn itself (the python `ncnn` package, CPU) in fp32 throughout:
opt.use_vulkan_compute, use_fp16_packed, use_fp16_storage, use_fp16_arithmetic,
use_bf16_storage and use_int8_inference all False; use_winograd_convolution and
use_sgemm_convolution left at ncnn's default (True); num_threads fixed (THREADS below). The
script also reruns every model with winograd and sgemm off, and with one thread, and records in
the README how far those raw outputs move (the spread a from-scratch fp32 implementation should
expect).

The host side follows the original programs (waifu2x-ncnn-vulkan, realcugan-ncnn-vulkan,
Real-ESRGAN-ncnn-vulkan) for one tile covering the whole crop: tools/ncnnmodels.py has the
rules, tests/golden/models/README.md (written by this script) states them.
"""
import os
import struct
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ncnnmodels as nm  # noqa: E402

import ncnn  # noqa: E402

OUT = os.path.join("tests", "golden", "models")
THREADS = 2

# crop name -> (file under testdata, x, y, w, h)
CROPS = {
    "comic40x32": ("set14/comic.png", 60, 40, 40, 32),
    "monarch29x23": ("set14/monarch.png", 300, 200, 29, 23),
    "comic24x20": ("set14/comic.png", 72, 48, 24, 20),
    "bridge-gray33x27": ("set14/bridge.png", 200, 150, 33, 27),
    "basn6a08-rgba31x27": ("pngsuite/basn6a08.png", 1, 3, 31, 27),
}
TWO = ["comic40x32", "monarch29x23"]
# model name -> crops
PLAN = {name: list(TWO) for name, *_ in nm.MODELS}
PLAN["waifu2x-upconv_7_anime_style_art_rgb"] += ["bridge-gray33x27", "basn6a08-rgba31x27"]
PLAN["realesr-animevideov3-x4"] += ["comic24x20"]
PLAN["realesrgan-x4plus"] = ["comic24x20"]
# (model, crop) whose raw float output is also written as TF32
RAW = [("waifu2x-upconv_7_anime_style_art_rgb", "monarch29x23"),
       ("realesr-animevideov3-x4", "comic24x20")]


def write_f32(path, planes):
    c, h, w = planes.shape
    with open(path, "wb") as f:
        f.write(b"TF32" + struct.pack("<III", w, h, c))
        f.write(np.ascontiguousarray(planes).astype("<f4").tobytes())


def save_png(path, arr):
    Image.fromarray(arr).save(path, optimize=True)


def load_crop(testdata, crop):
    f, x, y, w, h = CROPS[crop]
    im = Image.open(os.path.join(testdata, f))
    assert im.mode in ("RGB", "L", "RGBA"), (f, im.mode)
    return np.asarray(im)[y:y + h, x:x + w].copy()


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def main():
    shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join("..", "shared")
    models_dir = os.path.join(shared, "models")
    testdata = os.path.join(shared, "testdata")
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith((".png", ".f32")):
            os.remove(os.path.join(OUT, f))

    rows = []      # (model, crop, in size, out size, kind, psnr vs bicubic)
    spread = []    # (model, crop, max |d| no-winograd/sgemm, 8-bit diffs, max |d| 1 thread, diffs)
    raw_files = []
    for name, stem, fam, scale, prepad in nm.MODELS:
        stem = os.path.join(models_dir, stem)
        net = nm.make_net(ncnn, stem, THREADS)
        net_direct = nm.make_net(ncnn, stem, THREADS, winograd=False, sgemm=False)
        net_one = nm.make_net(ncnn, stem, 1)
        for crop in PLAN[name]:
            src = load_crop(testdata, crop)
            h, w = src.shape[:2]
            if src.ndim == 2:            # gray: expanded to R=G=B before the net
                rgb, alpha, kind = np.repeat(src[:, :, None], 3, axis=2), None, "gray->RGB"
            elif src.shape[2] == 4:      # alpha never enters the net
                rgb, alpha, kind = src[:, :, :3].copy(), src[:, :, 3].copy(), "RGBA"
            else:
                rgb, alpha, kind = src, None, "RGB"
            raw, out = nm.upscale_rgb(ncnn, net, fam, scale, prepad, rgb)
            raw_d, out_d = nm.upscale_rgb(ncnn, net_direct, fam, scale, prepad, rgb)
            raw_1, out_1 = nm.upscale_rgb(ncnn, net_one, fam, scale, prepad, rgb)
            spread.append((name, crop, float(np.abs(raw - raw_d).max()),
                           int(np.count_nonzero(out != out_d)), out.size,
                           float(np.abs(raw - raw_1).max()), int(np.count_nonzero(out != out_1))))
            if alpha is not None:
                a = nm.upscale_alpha(ncnn, scale, alpha, THREADS)
                out = np.dstack([out, a])
            base = os.path.join(OUT, "%s-%s" % (name, crop))
            save_png(base + ".in.png", src)
            save_png(base + ".out.png", out)
            if (name, crop) in RAW:
                write_f32(base + ".out.f32", raw)
                raw_files.append((os.path.basename(base) + ".out.f32", raw.shape))
            bic = np.asarray(Image.fromarray(rgb).resize((w * scale, h * scale),
                                                         Image.Resampling.BICUBIC))
            p = psnr(out[:, :, :3], bic)
            back = np.asarray(Image.fromarray(np.ascontiguousarray(out[:, :, :3])).resize(
                (w, h), Image.Resampling.BICUBIC))
            pb = psnr(back, rgb)
            rows.append((name, crop, "%dx%d" % (w, h), "%dx%d" % (w * scale, h * scale), kind,
                         p, pb))
            print("%-38s %-20s %-6s -> %-8s %-9s PSNR vs bicubic up %.2f dB, shrunk back vs "
                  "input %.2f dB" % (name, crop, rows[-1][2], rows[-1][3], kind, p, pb))
            if p < 20 or pb < 24:
                print("  WARNING: implausible upscale", file=sys.stderr)
    write_readme(rows, spread, raw_files)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print("wrote %d files, %d bytes" % (len(os.listdir(OUT)), total))


def write_readme(rows, spread, raw_files):
    L = []
    a = L.append
    a("# Goldens for the super-resolution models")
    a("")
    a("Written by `tools/gen-model-golden.py` (run from the repository root: `python3 "
      "tools/gen-model-golden.py [SHARED_DIR]`, SHARED_DIR defaulting to `../shared`; it "
      "rewrites this file and every `.png`/`.f32` here). Made with the python `ncnn` package "
      "%s (pip), NumPy %s, Pillow %s." % (ncnn.__version__, np.__version__,
                                           Image.__version__))
    a("")
    a("## How the references were made")
    a("")
    a("Each model ran through ncnn itself, on the CPU, in fp32 throughout: "
      "`use_vulkan_compute`, `use_fp16_packed`, `use_fp16_storage`, `use_fp16_arithmetic`, "
      "`use_bf16_storage`, `use_int8_inference` all false; `use_winograd_convolution` and "
      "`use_sgemm_convolution` left at ncnn's default (true); `num_threads` %d. The models are "
      "`../shared/models` (see its README.md and NCNN-FORMAT.md)." % THREADS)
    a("")
    a("The host side is what waifu2x-ncnn-vulkan, realcugan-ncnn-vulkan and "
      "Real-ESRGAN-ncnn-vulkan do for **one tile covering the whole crop** (tilesize >= the "
      "crop's larger side, no TTA; for Real-CUGAN one tile also means no syncgap, which the "
      "program only runs when `tilesize < max(w, h)`):")
    a("")
    a("1. Gray input is expanded to R=G=B. RGBA: only RGB enters the net.")
    a("2. Input = uint8 x (1/255.f) in float32, planar RGB.")
    a("3. Edge padding of `prepadding` on every side, plus on the right/bottom the alignment "
      "extra (waifu2x scale 2: up to even; Real-CUGAN x2/x4: even, x3: multiple of 4; "
      "Real-ESRGAN: none), all filled by the family's rule: waifu2x replicates the edge pixel, "
      "Real-CUGAN and Real-ESRGAN mirror without repeating it (numpy `reflect`, PyTorch "
      "`ReflectionPad2d`; checked equal to ncnn `copy_make_border` type 2).")
    a("4. Blobs: waifu2x `Input1` -> `Eltwise4`; Real-CUGAN `in0` -> `out0`; Real-ESRGAN "
      "`data` -> `output`.")
    a("5. Crop: Real-ESRGAN's net maps the padded tile to scale x its size; drop "
      "`prepadding*scale` rows/columns at the top-left and keep W*s x H*s. waifu2x and "
      "Real-CUGAN nets output (tile + alignment) x scale; keep the top-left W*s x H*s, drop "
      "the alignment extra.")
    a("6. `v = net*255 + 0.5`; Real-CUGAN x4 adds the residual the graph leaves out: "
      "`v = net*255 + 0.5 + in[y/4][x/4]*255` with `in` the normalised input (float32). "
      "Then truncate and clamp to 0..255.")
    a("7. Alpha: the unpadded alpha plane, kept in 0..255 (not divided), enlarged with ncnn's "
      "`Interp` bicubic (type 3) semantics written in numpy (A = -0.75, half-pixel centres, taps "
      "clamped to the edge, float32, horizontal then vertical), then +0.5, truncated, clamped. "
      "A standalone Interp net run through the python ncnn package returned uninitialised "
      "values (1e36, zeros in the first rows, different per thread count), so it is not used; "
      "the same Interp inside the animevideov3 networks agrees with the formula.")
    a("")
    a("Prepadding: upconv_7 7, cunet 18, Real-CUGAN x2 18 / x3 14 / x4 19, Real-ESRGAN 10.")
    a("")
    a("## Files")
    a("")
    a("`MODEL-CROP.in.png` is the crop (8-bit; gray crops as gray PNG, the RGBA crop as RGBA), "
      "identical for every model that uses that crop. `MODEL-CROP.out.png` is the program's "
      "result (8-bit RGB; RGBA for the RGBA crop). Crops (x, y, w, h in the source image):")
    a("")
    for c, (f, x, y, w, h) in CROPS.items():
        a("- `%s`: `testdata/%s` at x=%d y=%d, %dx%d" % (c, f, x, y, w, h))
    a("")
    a("TF32 raw outputs (`MODEL-CROP.out.f32`): the network output after the crop of step 5, "
      "before `*255 + 0.5`, planar float32 in 0..1 units (the format `tu_read_f32` reads: "
      "`TF32`, width, height, channels as LE uint32, then LE float32 planes):")
    a("")
    for f, shp in raw_files:
        a("- `%s`: %dx%d, %d channels" % (f, shp[2], shp[1], shp[0]))
    a("")
    a("| model | crop | in | out | kind | PSNR vs Pillow bicubic upscale | PSNR of the "
      "output shrunk back (Pillow bicubic) vs the crop |")
    a("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        a("| %s | %s | %s | %s | %s | %.2f dB | %.2f dB |" % r)
    a("")
    a("Both PSNR columns are only sanity checks: a good upscale lies near a bicubic one, and "
      "shrunk back it gives the input again. Real-CUGAN sharpens and raises contrast on "
      "purpose (its output's standard deviation is 5-15% above the input's on these crops), "
      "and Real-ESRGAN x4plus invents texture, so they sit lower (about 23-27 dB against "
      "bicubic, 25-33 dB shrunk back); waifu2x stays near its input (above 42 dB shrunk "
      "back). A channel swap or a one-pixel shift would fall far below these numbers. The "
      "images were also looked at.")
    a("")
    a("## How stable ncnn's fp32 result is")
    a("")
    a("The same runs with winograd and sgemm off (direct convolution), and with one thread, "
      "against the goldens: max |difference| of the raw output (0..1 units) and how many 8-bit "
      "samples differ. A correct fp32 implementation should land within about this spread.")
    a("")
    a("| model | crop | no winograd/sgemm: max raw diff | 8-bit samples differing | "
      "1 thread: max raw diff | 8-bit differing |")
    a("| --- | --- | --- | --- | --- | --- |")
    for name, crop, d, nd, n, d1, nd1 in spread:
        a("| %s | %s | %.2e | %d of %d | %.2e | %d |" % (name, crop, d, nd, n, d1, nd1))
    a("")
    a(SEMANTICS)
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("\n".join(L) + "\n")


SEMANTICS = """## Notes on the original programs' semantics

What reading their source (src/*.cpp and the preproc/postproc shaders) showed, beyond
`../shared/models/README.md`:

- **Tile alignment.** The alignment extra is computed from the tile's unpadded size and added
  to the right/bottom prepadding (`prepadding_right/bottom`), then filled by the same edge rule
  as prepadding when the tile touches the image edge. The output tile the host keeps is
  `tile_w_nopad*scale x tile_h_nopad*scale` from the top-left, so the extra is thrown away.
  Real-ESRGAN-ncnn-vulkan has no alignment at all.
- **Edge rules.** waifu2x's preproc shader clamps the coordinate (replicate); Real-CUGAN's and
  Real-ESRGAN's fold it with `abs()` twice (mirror without repeating the edge pixel). Their CPU
  paths call `copy_make_border` with BORDER_REPLICATE (waifu2x) or type 2, BORDER_REFLECT
  (realcugan). A fold is only right while the padding is narrower than the image; these crops
  stay within that.
- **Real-CUGAN x4 residual.** The CPU path adds `in_tile[prepadding + y/4][prepadding + x/4]*255`
  (the normalised padded tile, so `(u8 * (1/255.f)) * 255.f`) to `net*255 + 0.5`; the GPU
  shader adds the uint8 pixel /255 to the net output and then multiplies by 255. The two differ
  by float rounding only. x2 and x3 graphs contain their residual.
- **animevideov3 x2/x3.** The x2/x3 `.param`s are the x4 net plus a last `Interp` bicubic x0.5 /
  x0.75 of the x4 output of the whole padded tile; the host then crops `prepadding*scale` with
  the model's nominal scale (20 / 30), which works because 4*(W+20)*0.5 = 2W+40 and
  4*(W+20)*0.75 = 3W+60 exactly.
- **Alpha.** Taken from the unpadded tile only (`tile_w_nopad x tile_h_nopad`), with values
  0..255, enlarged by an `Interp` bicubic layer at the model's scale (edges clamped inside
  Interp), then put back. The GPU postproc shaders add 0.5 to alpha as to RGB before
  `floor`/clamp; waifu2x's and realcugan's CPU paths copy the bicubic alpha into the float
  output without +0.5, so `to_pixels` truncates it: the CPU path can be one lower. These goldens
  follow the GPU rule (+0.5), the programs' default path. (realcugan's non-TTA CPU path also
  takes alpha from the padded tile, which only matches for a single tile.)
- **Output rounding.** CPU: `v*255 + 0.5` then ncnn's saturate cast (truncate, clamp). GPU:
  `clamp(uint(floor(v)), 0, 255)`; for v < 0 the GLSL `uint()` of a negative float is
  undefined, so the GPU may not give 0 there. The goldens use truncate-and-clamp.
- **Gray input.** waifu2x-ncnn-vulkan (libpng) uses `png_set_gray_to_rgb`; realcugan and
  Real-ESRGAN reload with stb_image asking for 3 (or 4 for gray+alpha) channels. Both give
  R=G=B. 16-bit PNGs are cut to 8 bits first (high byte).
- **Real-ESRGAN-ncnn-vulkan** has only the GPU path (no CPU code), so its models are run here
  on ncnn's CPU with the same host rules.
"""

if __name__ == "__main__":
    main()
