#!/usr/bin/env python3
"""make bench: OpenCV (cv2, opencv-python-headless) beside tessera and vips, timed in-process.

Usage: tools/bench-opencv.py IN.png OUTDIR REPS SIGMA SHARP_SIGMA SHARP_AMOUNT

Prints "version<TAB>VERSION, N threads", then one tab-separated line per row,
"workload<TAB>implementation<TAB>wall<TAB>process", which tools/bench.sh formats into its table;
or a single line "skip<TAB>REASON" when cv2 (or numpy) is missing. Workloads match tools/bench.sh's tessera graphs:

  gaussian blur sigma S    cv2.GaussianBlur, ksize 2*ceil(4*S)+1 (tessera's radius) with
                           BORDER_REPLICATE (tessera's edge: clamp); also OpenCV's default
                           ksize (0,0) and border (REFLECT_101): the kernel OpenCV derives from
                           sigma, 2*round(3*S)+1 taps on 8 bits and 2*round(4*S)+1 on float
  sharpen sigma S amount A  unsharp mask as OpenCV users write it: GaussianBlur then
                           addWeighted(img, 1+A, blur, -A, 0), i.e. tessera's
                           out = in + A*(in - gauss(in, S)) with threshold 0
  resize x4 / x0.25        cv2.resize INTER_LANCZOS4 (8x8 taps, Lanczos a=4)

each on uint8 and on float32 (0..1) arrays. "process" is the operation alone on an array in
memory; "wall" is cv2.imread of the PNG + the operation + cv2.imwrite of PNG at compression 1,
and for float32 also the conversions to and from float32 (what a float pipeline reading and
writing 8-bit files pays). Best of REPS for each, after one untimed warm-up call.
"""
import math
import os
import sys
import time


def main():
    path, outdir, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sigma, s_sigma, s_amount = float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
    try:
        import cv2
        import numpy as np
    except ImportError as e:
        print(f"skip\tno python cv2/numpy ({e.name}): pip install opencv-python-headless")
        return 0
    out_png = os.path.join(outdir, "cv.png")

    def ksize(s):
        k = 2 * math.ceil(4 * s) + 1
        return (k, k)

    def blur(img):
        return cv2.GaussianBlur(img, ksize(sigma), sigma, borderType=cv2.BORDER_REPLICATE)

    def blur_default(img):
        return cv2.GaussianBlur(img, (0, 0), sigma)

    def sharpen(img):
        b = cv2.GaussianBlur(img, ksize(s_sigma), s_sigma, borderType=cv2.BORDER_REPLICATE)
        return cv2.addWeighted(img, 1.0 + s_amount, b, -s_amount, 0)

    def resize(f):
        def op(img):
            h, w = img.shape[:2]
            return cv2.resize(img, (round(w * f), round(h * f)), interpolation=cv2.INTER_LANCZOS4)

        return op

    # In place where numpy allows, so a 12000x8000 float image makes no extra temporaries.
    def to_f32(img):
        f = img.astype(np.float32)
        np.multiply(f, np.float32(1 / 255), out=f)
        return f

    def to_u8(img):
        np.multiply(img, np.float32(255), out=img)
        np.add(img, np.float32(0.5), out=img)
        np.clip(img, 0, 255, out=img)
        return img.astype(np.uint8)

    def best_of(fn):
        return min(fn() for _ in range(reps))

    def timed(op, src):
        op(src)  # warm-up: thread pool, allocator
        def one():
            t0 = time.perf_counter()
            op(src)
            return time.perf_counter() - t0

        return best_of(one)

    def wall(op, f32):
        def one():
            t0 = time.perf_counter()
            img = cv2.imread(path, cv2.IMREAD_COLOR)
            if f32:
                img = to_f32(img)
            out = op(img)
            if f32:
                out = to_u8(out)
            cv2.imwrite(out_png, out, [cv2.IMWRITE_PNG_COMPRESSION, 1])
            return time.perf_counter() - t0

        return best_of(one)

    u8 = cv2.imread(path, cv2.IMREAD_COLOR)
    if u8 is None:
        print(f"skip\tcv2.imread could not read {path}")
        return 0
    f32 = to_f32(u8)
    print(f"version\t{cv2.__version__}, {cv2.getNumThreads()} threads", flush=True)
    rows = [
        ("resize x4 lanczos3", "resize LANCZOS4", resize(4)),
        ("resize x0.25 lanczos3", "resize LANCZOS4", resize(0.25)),
        (f"gaussian blur sigma {sigma:g}", f"GaussianBlur k{ksize(sigma)[0]}", blur),
        (f"gaussian blur sigma {sigma:g}", "GaussianBlur (0,0)", blur_default),
        (f"sharpen sigma {s_sigma:g} amount {s_amount:g}", "blur+addWeighted", sharpen),
    ]
    for workload, name, op in rows:
        for kind, src in (("u8", u8), ("f32", f32)):
            proc = timed(op, src)
            w = wall(op, kind == "f32")
            print(f"{workload}\topencv {name} {kind}\t{w:.6f}\t{proc:.6f}", flush=True)
    try:
        os.remove(out_png)
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
