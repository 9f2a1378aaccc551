#!/usr/bin/env python3
"""The ncnn side of tools/bench-models.sh. Subcommands:

  bench-ncnn.py input W H OUT.png [SHARED_DIR]
      a deterministic RGB input: the centre W x H of Set14 lenna.png (512x512), tiled by
      mirroring when larger; a fixed synthetic pattern when the shared test data is missing.
  bench-ncnn.py time MODEL IN.png --threads N [--reps 3] [--models DIR]
      times ncnn (python package, CPU, fp32 throughout, winograd/sgemm at ncnn's defaults) on
      one tile covering the whole image with the original program's padding: one warm-up,
      then REPS timed runs of the network alone (host padding/crop outside the timing);
      prints "median_seconds macs padded_WxH".
  bench-ncnn.py macs MODEL W H [--models DIR]
      multiply-adds of one padded tile for a W x H image, from the .param geometry.
  bench-ncnn.py peak --threads N
      numpy float32 matmul GFLOP/s on N BLAS threads: a proxy for the CPU's peak.
  bench-ncnn.py models
      the model names, one a line.
"""
import argparse
import os
import sys
import time

# BLAS threads must be fixed before numpy is imported (peak).
if "--threads" in sys.argv:
    _n = sys.argv[sys.argv.index("--threads") + 1]
    for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_v] = _n

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ncnnmodels as nm  # noqa: E402

MODELS = {m[0]: m for m in nm.MODELS}
DEFAULT_MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                              "models")


def cmd_input(a):
    from PIL import Image
    w, h = a.w, a.h
    src = os.path.join(a.shared, "testdata", "set14", "lenna.png")
    if os.path.exists(src):
        img = np.asarray(Image.open(src).convert("RGB"))
        reps = ((h + img.shape[0] - 1) // img.shape[0], (w + img.shape[1] - 1) // img.shape[1])
        if reps != (1, 1):
            img = np.pad(img, ((0, (reps[0] - 1) * img.shape[0]), (0, (reps[1] - 1) * img.shape[1]),
                               (0, 0)), mode="symmetric")
        y0, x0 = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
        img = img[y0:y0 + h, x0:x0 + w]
    else:
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        img = np.stack([127.5 + 127.5 * np.sin(x / 7.0 + y / 11.0),
                        127.5 + 127.5 * np.cos(x * y / 900.0),
                        (x * 3 + y * 5) % 256], axis=2).astype(np.uint8)
    Image.fromarray(np.ascontiguousarray(img)).save(a.out)


def padded_size(name, w, h):
    _, _, fam, scale, prepad = MODELS[name]
    t, b, l, r = nm.pad_geometry(fam, scale, prepad, w, h)
    return w + l + r, h + t + b


def cmd_macs(a):
    _, stem, *_ = MODELS[a.model]
    pw, ph = padded_size(a.model, a.w, a.h)
    macs, _ = nm.count_macs(os.path.join(a.models, stem) + ".param", pw, ph)
    print(macs)


def cmd_time(a):
    import ncnn
    from PIL import Image
    _, stem, fam, scale, prepad = MODELS[a.model]
    stem = os.path.join(a.models, stem)
    rgb = np.asarray(Image.open(a.input).convert("RGB"))
    h, w = rgb.shape[:2]
    x = rgb.transpose(2, 0, 1).astype(np.float32) * np.float32(1.0 / 255.0)
    t, b, l, r = nm.pad_geometry(fam, scale, prepad, w, h)
    xp = nm.pad_planes(x, fam, t, b, l, r)
    net = nm.make_net(ncnn, stem, a.threads)
    nm.run_net(ncnn, net, fam, xp)  # warm-up
    times = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        nm.run_net(ncnn, net, fam, xp)
        times.append(time.perf_counter() - t0)
    macs, _ = nm.count_macs(stem + ".param", xp.shape[2], xp.shape[1])
    print("%.6f %d %dx%d" % (float(np.median(times)), macs, xp.shape[2], xp.shape[1]))


def cmd_peak(a):
    n = 2048
    rng = np.random.default_rng(1)
    x = rng.random((n, n), dtype=np.float32)
    y = rng.random((n, n), dtype=np.float32)
    x @ y
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        x @ y
        best = min(best, time.perf_counter() - t0)
    print("%.1f" % (2.0 * n ** 3 / best / 1e9))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("input")
    q.add_argument("w", type=int)
    q.add_argument("h", type=int)
    q.add_argument("out")
    q.add_argument("shared", nargs="?", default=os.path.join(DEFAULT_MODELS, ".."))
    q = sub.add_parser("time")
    q.add_argument("model", choices=sorted(MODELS))
    q.add_argument("input")
    q.add_argument("--threads", type=int, default=os.cpu_count())
    q.add_argument("--reps", type=int, default=3)
    q.add_argument("--models", default=DEFAULT_MODELS)
    q = sub.add_parser("macs")
    q.add_argument("model", choices=sorted(MODELS))
    q.add_argument("w", type=int)
    q.add_argument("h", type=int)
    q.add_argument("--models", default=DEFAULT_MODELS)
    q = sub.add_parser("peak")
    q.add_argument("--threads", type=int, default=os.cpu_count())
    sub.add_parser("models")
    a = p.parse_args()
    if a.cmd == "models":
        print("\n".join(m[0] for m in nm.MODELS))
    else:
        {"input": cmd_input, "time": cmd_time, "macs": cmd_macs, "peak": cmd_peak}[a.cmd](a)


if __name__ == "__main__":
    main()
