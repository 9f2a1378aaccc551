"""Shared by tools/gen-model-golden.py and tools/bench-ncnn.py: the bundled super-resolution
models, the host-side contract of the programs they come from (edge padding, alignment, blob
names, output crop, Real-CUGAN x4 residual), one-tile inference through the python `ncnn`
package, and a .param reader that counts multiply-adds.

The host-side rules were learnt by reading waifu2x-ncnn-vulkan (src/waifu2x.cpp,
waifu2x_preproc.comp, waifu2x_postproc.comp), realcugan-ncnn-vulkan (src/realcugan.cpp,
realcugan_preproc.comp, realcugan_postproc.comp, realcugan_4x_postproc.comp) and
Real-ESRGAN-ncnn-vulkan (src/realesrgan.cpp, realesrgan_preproc.comp,
realesrgan_postproc.comp); see tests/golden/models/README.md. Nothing here is their code.
"""
import os

import numpy as np

# name, file stem under the models folder, family, scale, prepadding (from each program's main.cpp)
MODELS = [
    ("waifu2x-upconv_7_anime_style_art_rgb",
     "waifu2x-upconv_7_anime_style_art_rgb/scale2.0x_model", "waifu2x", 2, 7),
    ("waifu2x-upconv_7_photo", "waifu2x-upconv_7_photo/scale2.0x_model", "waifu2x", 2, 7),
    ("waifu2x-cunet", "waifu2x-cunet/scale2.0x_model", "waifu2x", 2, 18),
    ("realcugan-se-up2x", "realcugan-se/up2x-no-denoise", "realcugan", 2, 18),
    ("realcugan-se-up3x", "realcugan-se/up3x-no-denoise", "realcugan", 3, 14),
    ("realcugan-se-up4x", "realcugan-se/up4x-no-denoise", "realcugan", 4, 19),
    ("realcugan-nose-up2x", "realcugan-nose/up2x-no-denoise", "realcugan", 2, 18),
    ("realesr-animevideov3-x2", "realesr-animevideov3/realesr-animevideov3-x2",
     "realesrgan", 2, 10),
    ("realesr-animevideov3-x3", "realesr-animevideov3/realesr-animevideov3-x3",
     "realesrgan", 3, 10),
    ("realesr-animevideov3-x4", "realesr-animevideov3/realesr-animevideov3-x4",
     "realesrgan", 4, 10),
    ("realesrgan-x4plus", "realesrgan-x4plus/realesrgan-x4plus", "realesrgan", 4, 10),
]

BLOBS = {  # family -> (input blob, output blob)
    "waifu2x": ("Input1", "Eltwise4"),
    "realcugan": ("in0", "out0"),
    "realesrgan": ("data", "output"),
}


def align_extra(family, scale, n):
    """Extra pixels added on the right/bottom so the tile side n fits the net (one tile)."""
    if family == "waifu2x":
        m = {1: 4, 2: 2}[scale]
    elif family == "realcugan":
        m = {1: 4, 2: 2, 3: 4, 4: 2}[scale]
    else:
        return 0
    return (n + m - 1) // m * m - n


def pad_geometry(family, scale, prepadding, w, h):
    """(top, bottom, left, right) edge padding of a one-tile run on a w x h image."""
    return (prepadding, prepadding + align_extra(family, scale, h),
            prepadding, prepadding + align_extra(family, scale, w))


def pad_planes(x, family, top, bottom, left, right):
    """x: (C,H,W) float32. waifu2x: replicate; Real-CUGAN/Real-ESRGAN: mirror without repeating
    the edge pixel (the shaders' abs() fold; numpy 'reflect')."""
    mode = "edge" if family == "waifu2x" else "reflect"
    if mode == "reflect":
        assert max(top, bottom) < x.shape[1] and max(left, right) < x.shape[2], \
            "reflect padding wider than the image folds twice; not modelled"
    return np.pad(x, ((0, 0), (top, bottom), (left, right)), mode=mode)


def make_net(ncnn, stem, threads, winograd=True, sgemm=True):
    """An ncnn CPU net in fp32 throughout. winograd/sgemm stay at ncnn's defaults (on)."""
    net = ncnn.Net()
    o = net.opt
    o.use_vulkan_compute = False
    o.use_fp16_packed = False
    o.use_fp16_storage = False
    o.use_fp16_arithmetic = False
    o.use_bf16_storage = False
    o.use_int8_inference = False
    o.use_winograd_convolution = winograd
    o.use_sgemm_convolution = sgemm
    o.num_threads = threads
    if net.load_param(stem + ".param") != 0 or net.load_model(stem + ".bin") != 0:
        raise RuntimeError("cannot load " + stem)
    return net


def run_net(ncnn, net, family, x):
    """x: (3,H,W) float32 padded input -> (3,OH,OW) float32 network output."""
    blob_in, blob_out = BLOBS[family]
    ex = net.create_extractor()
    ex.input(blob_in, ncnn.Mat(np.ascontiguousarray(x, dtype=np.float32)))
    ret, out = ex.extract(blob_out)
    if ret != 0:
        raise RuntimeError("extract failed: %d" % ret)
    return np.array(out, dtype=np.float32, copy=True)


def upscale_rgb(ncnn, net, family, scale, prepadding, rgb):
    """One tile covering the whole image, as the original programs run it.
    rgb: (H,W,3) uint8. Returns (raw, u8): raw = the network output cropped to the image,
    (3, H*s, W*s) float32 in 0..1 units before any *255 (for Real-CUGAN x4 without the residual);
    u8 = the final (H*s, W*s, 3) uint8 image."""
    h, w, _ = rgb.shape
    # uint8 -> float, times (1/255.f) in float32, planar RGB
    x = rgb.transpose(2, 0, 1).astype(np.float32) * np.float32(1.0 / 255.0)
    top, bottom, left, right = pad_geometry(family, scale, prepadding, w, h)
    xp = pad_planes(x, family, top, bottom, left, right)
    out = run_net(ncnn, net, family, xp)
    if family == "realesrgan":
        # the net maps the padded tile to scale x its size; drop prepadding*scale top-left
        assert out.shape[1:] == (xp.shape[1] * scale, xp.shape[2] * scale), out.shape
        c = prepadding * scale
        raw = out[:, c:c + h * scale, c:c + w * scale]
    else:
        # the net already crops its receptive field: output = (tile + alignment) x scale;
        # the host keeps the top-left tile x scale and drops the alignment extra
        assert out.shape[1:] == ((h + bottom - prepadding) * scale,
                                 (w + right - prepadding) * scale), (out.shape, xp.shape)
        raw = out[:, :h * scale, :w * scale]
    v = raw * np.float32(255.0) + np.float32(0.5)
    if family == "realcugan" and scale == 4:
        # the x4 graph leaves out its residual: add nearest-x4 of the unpadded input tile,
        # read back from the padded, normalised tile as realcugan.cpp's CPU path does
        near = xp[:, prepadding:prepadding + h, prepadding:prepadding + w]
        near = np.repeat(np.repeat(near, 4, axis=1), 4, axis=2)
        v = v + near * np.float32(255.0)
    u8 = np.clip(np.trunc(v), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    return np.ascontiguousarray(raw), u8


def interp_net(ncnn, scale, threads):
    """A two-layer ncnn net (Input -> Interp bicubic, type 3, at scale x scale), the layer the
    programs build for the alpha plane."""
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_packed = False
    net.opt.use_fp16_storage = False
    net.opt.use_fp16_arithmetic = False
    net.opt.use_bf16_storage = False
    net.opt.num_threads = threads
    net.load_param_mem("7767517\n2 2\nInput in 0 1 in\n"
                       "Interp up 1 1 in out 0=3 1=%.6e 2=%.6e\n" % (scale, scale))
    net.load_model(ncnn.DataReaderFromEmpty())
    return net


def _cubic_taps(n, out_n):
    """ncnn Interp bicubic taps on one axis: half-pixel centres, A = -0.75, the source offset
    computed in double then float as ncnn does, taps outside the image clamped to the edge."""
    A = np.float32(-0.75)
    scale = n / out_n
    lo = np.zeros(out_n, np.int64)
    w = np.zeros((out_n, 4), np.float32)
    for d in range(out_n):
        f = np.float32((d + 0.5) * scale - 0.5)
        s = int(np.floor(f))
        t = np.float32(f - np.float32(s))
        t1, u = t + np.float32(1), np.float32(1) - t
        w0 = ((A * t1 - 5 * A) * t1 + 8 * A) * t1 - 4 * A
        w1 = ((A + 2) * t - (A + 3)) * t * t + 1
        w2 = ((A + 2) * u - (A + 3)) * u * u + 1
        w[d] = [w0, w1, w2, np.float32(1) - w0 - w1 - w2]
        lo[d] = s - 1
    idx = np.clip(lo[:, None] + np.arange(4)[None, :], 0, n - 1)
    return idx, w


def upscale_alpha(ncnn, scale, alpha, threads):
    """alpha: (H,W) uint8 -> (H*s, W*s) uint8: values kept in 0..255 (not /255), enlarged with
    ncnn's Interp bicubic (type 3) semantics, then +0.5, truncated, clamped (the GPU postproc
    shader's rule). Written in numpy (float32, horizontal then vertical, as ncnn's
    resize_bicubic) because a standalone Interp net run through the python ncnn package
    returned uninitialised values (1e36 and zeros in the first rows, different per thread
    count); the same Interp inside the animevideov3 networks matches this formula exactly."""
    h, w = alpha.shape
    a = alpha.astype(np.float32)
    ix, wx = _cubic_taps(w, w * scale)
    iy, wy = _cubic_taps(h, h * scale)
    rows = np.zeros((h, w * scale), np.float32)
    for k in range(4):
        rows += a[:, ix[:, k]] * wx[None, :, k]
    out = np.zeros((h * scale, w * scale), np.float32)
    for k in range(4):
        out += rows[iy[:, k], :] * wy[:, k][:, None]
    return np.clip(np.trunc(out + np.float32(0.5)), 0, 255).astype(np.uint8)


# ---- .param reader, shape propagation and multiply-add count --------------------------------

def _num(tok):
    return float(tok) if any(ch in tok for ch in ".eE") else int(tok)


def parse_param(path):
    """-> list of (type, name, inputs, outputs, {key: value or list})"""
    with open(path) as f:
        toks = f.read().split("\n")
    lines = [l.split() for l in toks if l.strip()]
    assert lines[0] == ["7767517"], "not an ncnn text .param"
    nlayers = int(lines[1][0])
    layers = []
    for parts in lines[2:2 + nlayers]:
        typ, name, nin, nout = parts[0], parts[1], int(parts[2]), int(parts[3])
        ins = parts[4:4 + nin]
        outs = parts[4 + nin:4 + nin + nout]
        kv = {}
        for p in parts[4 + nin + nout:]:
            k, v = p.split("=", 1)
            k = int(k)
            if k <= -23300:
                vals = v.split(",")
                kv[-k - 23300] = [_num(t) for t in vals[1:1 + int(vals[0])]]
            else:
                kv[k] = _num(v)
        layers.append((typ, name, ins, outs, kv))
    return layers


def count_macs(param_path, w, h):
    """Multiply-adds of one forward pass on a (3,h,w) input. Counted: Convolution
    (weights x output pixels), Deconvolution (weights x input pixels: every input pixel meets
    every weight), InnerProduct (weights). Everything else (activations, adds, resizes, pooling)
    is left out. Returns (macs, output (c,h,w))."""
    shapes = {}
    macs = 0
    for typ, name, ins, outs, kv in parse_param(param_path):
        s = [shapes[i] for i in ins]
        if typ == "Input":
            r = (3, h, w)
        elif typ in ("Convolution", "Deconvolution"):
            c, ih, iw = s[0]
            k = kv.get(1, 0)
            kh = kv.get(11, k)
            d = kv.get(2, 1)
            dh = kv.get(12, d)
            st = kv.get(3, 1)
            sth = kv.get(13, st)
            pl = kv.get(4, 0)
            pr = kv.get(15, pl)
            pt = kv.get(14, pl)
            pb = kv.get(16, pt)
            assert min(pl, pr, pt, pb) >= 0, "SAME padding not modelled"
            nout, wsize = kv[0], kv[6]
            if typ == "Convolution":
                ow = (iw + pl + pr - (d * (k - 1) + 1)) // st + 1
                oh = (ih + pt + pb - (dh * (kh - 1) + 1)) // sth + 1
                macs += wsize * ow * oh
            else:
                ow = (iw - 1) * st + d * (k - 1) + 1 + kv.get(18, 0) - pl - pr
                oh = (ih - 1) * sth + dh * (kh - 1) + 1 + kv.get(19, kv.get(18, 0)) - pt - pb
                macs += wsize * iw * ih
            r = (nout, oh, ow)
        elif typ == "InnerProduct":
            macs += kv[2]
            r = (kv[0],)
        elif typ == "Pooling":
            assert kv.get(4, 0) == 1, "only global pooling modelled"
            r = (s[0][0],)
        elif typ == "Crop":
            c, ih, iw = s[0]
            if len(s) == 2:
                r = s[1] if len(s[1]) == 3 else (c,) + s[1][1:]
            else:
                starts, ends, axes = kv[9], kv[10], kv[11]
                dims = [c, ih, iw]
                for st_, en, ax in zip(starts, ends, axes):
                    ax = ax + 3 if ax < 0 else ax
                    n = dims[ax]
                    b = 0 if st_ == -233 else (st_ + n if st_ < 0 else st_)
                    e = n if en == -233 else (min(en, n) if en > 0 else n + en)
                    dims[ax] = e - b
                r = tuple(dims)
        elif typ == "PixelShuffle":
            c, ih, iw = s[0]
            f = kv.get(0, 1)
            r = (c // (f * f), ih * f, iw * f)
        elif typ == "Interp":
            c, ih, iw = s[0]
            oh, ow = kv.get(3, 0), kv.get(4, 0)
            if not (oh and ow):
                oh = int(ih * float(kv.get(1, 1.0)))
                ow = int(iw * float(kv.get(2, 1.0)))
            r = (c, oh, ow)
        elif typ == "Concat":
            assert kv.get(0, 0) == 0
            r = (sum(x[0] for x in s),) + s[0][1:]
        elif typ in ("BinaryOp", "Eltwise", "Scale"):
            r = max(s, key=len)
        elif typ in ("Split", "PReLU", "ReLU", "Sigmoid"):
            r = s[0]
        else:
            raise ValueError("layer type %s not modelled" % typ)
        for o in outs:
            shapes[o] = r
    return macs, r


def model_stem(models_dir, stem):
    return os.path.join(models_dir, stem)
