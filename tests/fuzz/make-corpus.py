#!/usr/bin/env python3
"""Regenerate the seed corpora of the fuzz harnesses (tests/fuzz/corpus/{graph,image,model}).

Small valid inputs (the example graphs, PngSuite and libjpeg-turbo test images, tiny ncnn models)
and a reproducer of every hostile input the engine already refuses or survives: deeply nested
YAML, a fan-out graph, merge keys and alias chains; a PNG header claiming 100000x100000, a PNG
whose IDAT inflates far past its rows, a JPEG over 65500 a side, a JPEG of 300 scans, truncated
and damaged files; model files cut short, with too many layers or weights missing. Every file
stays under 20 KB. Run from the repository root (needs Pillow, a C compiler and libjpeg):
    python3 tests/fuzz/make-corpus.py [SHARED_TESTDATA_DIR]
Inputs found by `make fuzz` that reproduce a fixed bug are added by hand (named repro-*)."""
import glob, io, os, shutil, struct, subprocess, sys, tempfile, zlib

from PIL import Image, ImageCms

ROOT = os.getcwd()
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared")
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")
LIMIT = 20000


def put(kind, name, data):
    assert len(data) <= LIMIT, (name, len(data))
    d = os.path.join(OUT, kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ---- graphs ---------------------------------------------------------------------------------
for pattern, prefix in (("graphs/*.yaml", "example-"), ("tests/bad/graph/*.yaml", "bad-"),
                        ("tests/bad/run/*.yaml", "run-")):
    for p in sorted(glob.glob(pattern)):
        data = read(p)
        if len(data) <= LIMIT:
            put("graph", prefix + os.path.basename(p), data)

HDR = "version: 1\nnodes:\n"
SRC = "  src: { type: image.load, params: { path: in.png } }\n"
fan = [HDR, SRC]
for i in range(125):
    fan.append("  a%d: { type: adjust.invert, inputs: { image: src.image } }\n" % i)
    fan.append("  s%d: { type: image.save, inputs: { image: a%d.image }, "
               "params: { path: o/f%d.png } }\n" % (i, i, i))
put("graph", "hostile-fanout-250.yaml", "".join(fan).encode())
chain = [HDR, SRC]
for i in range(300):
    chain.append("  n%d: { type: adjust.invert, inputs: { image: %s.image } }\n"
                 % (i, "src" if i == 0 else "n%d" % (i - 1)))
chain.append("  out: { type: image.save, inputs: { image: n299.image }, params: { path: o.png } }\n")
put("graph", "hostile-chain-300.yaml", "".join(chain).encode())
put("graph", "hostile-deep-flow.yaml", (HDR + "  a: " + "[" * 3000 + "]" * 3000 + "\n").encode())
put("graph", "hostile-deep-map.yaml", (HDR + "  a: " + "{a: " * 2000 + "1" + "}" * 2000 + "\n").encode())
put("graph", "hostile-merge-keys.yaml", (
    HDR + SRC + "  b1: &blur\n    type: blur.gaussian\n    inputs: { image: src.image }\n"
    "    params: &p { sigma: 2 }\n  b2:\n    <<: *blur\n    inputs: { image: b1.image }\n"
    "    params: { <<: *p, sigma: 3 }\n  b3:\n    <<: [*blur]\n    inputs: { image: b2.image }\n"
    "    params: *p\n  b4:\n    type: blur.gaussian\n    inputs: { image: b3.image }\n"
    "    params: { <<: [{ sigma: 5 }, *p] }\n"
    "  out: { type: image.save, inputs: { image: b4.image }, params: { path: out.png } }\n").encode())
laughs = ["version: 1\nx0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"]
for i in range(1, 12):
    laughs.append("x%d: &a%d [%s]\n" % (i, i, ", ".join(["*a%d" % (i - 1)] * 9)))
laughs.append("nodes:\n  a:\n    type: image.load\n    params: { path: x.png, n: *a11 }\n")
put("graph", "hostile-alias-laughs.yaml", "".join(laughs).encode())
put("graph", "hostile-merge-self.yaml", (HDR + "  a: &x { <<: *x, type: image.load }\n").encode())
put("graph", "hostile-long-key.yaml", (HDR + "  " + "k" * 15000 + ": { type: image.load }\n").encode())
put("graph", "hostile-nul.yaml", (HDR + SRC).encode().replace(b"in.png", b"in\0.png"))
blur = read("graphs/blur.yaml").decode()
for i, sets in enumerate((["soft.sigma=5", "out.path=x.jpg", "out.quality=40"],
                          ["soft.sigma=", "src.fail_on=none", "out.format=tiff"],
                          ["soft.sigma=1e9", "nope.x=1", "soft=3", "=", ".=", "soft.edge=mirror"],
                          ["out.path=", "src.path=-", "soft.sigma=0x1p3"])):
    put("graph", "set-%d.yaml" % i, (blur + "".join("#set %s\n" % a for a in sets)).encode())
put("graph", "hostile-op.yaml", (
    HDR + "  in: { type: image.load, params: { path: '-', fail_on: none } }\n"
    "  op: { type: resize, inputs: { image: in.image }, params: { scale: 0.5 } }\n"
    "  out: { type: image.save, inputs: { image: op.image }, params: { path: '-', format: png } }\n"
).encode())

# ---- images ---------------------------------------------------------------------------------
suite = os.path.join(SHARED, "testdata", "pngsuite")
picks = ["basn0g01", "basn0g16", "basn2c08", "basn2c16", "basn3p01", "basn3p08", "basn4a08",
         "basn4a16", "basn6a08", "basn6a16", "basi0g04", "basi2c16", "basi3p02", "basi6a08",
         "bgai4a16", "bgbn4a08", "ccwn2c08", "cdfn2c08", "ch1n3p04", "cm0n0g04", "ct1n0g04",
         "ctzn0g04", "exif2c08", "f04n2c08", "g03n2c08", "oi9n2c16", "s01i3p01", "s39i3p04",
         "tbbn3p08", "tp1n3p08", "z09n2c08", "xc1n0g08", "xcrn0g04", "xcsn0g01", "xd0n2c08",
         "xdtn0g01", "xhdn0g08", "xlfn0g04", "xs1n0g01", "xs2n0g01"]
for name in picks:
    p = os.path.join(suite, name + ".png")
    if os.path.exists(p):
        put("image", "pngsuite-" + name + ".png", read(p))
for p in sorted(glob.glob("tests/bad/files/*")) + sorted(glob.glob("tests/golden/io/*.jpg")):
    put("image", "bad-" + os.path.basename(p) if "bad" in p else "golden-" + os.path.basename(p),
        read(p))
for name in ("testimgari.jpg", "testimgint.jpg", "testorig.jpg"):
    put("image", "ljt-" + name, read(os.path.join(SHARED, "testdata", "libjpeg-turbo", name)))


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(w, h, idat, colour=2, depth=8):
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


put("image", "hostile-png-100000x100000.png", png(100000, 100000, b""))
# 16x16 RGB needs 16 * 49 bytes; this IDAT inflates to 16 MiB of zeros (16 KB compressed).
put("image", "hostile-png-inflate-bomb.png", png(16, 16, zlib.compress(b"\0" * (16 << 20), 9)))
put("image", "hostile-png-2048x2048-zeros.png", png(2048, 2048, zlib.compress(b"\0" * (2049 * 2048), 9), 0))
img = Image.new("RGB", (24, 16), (200, 30, 90))
b = io.BytesIO(); img.save(b, "JPEG", quality=80); base = b.getvalue()
sof = base.index(b"\xff\xc0")
big = bytearray(base); big[sof + 5:sof + 9] = struct.pack(">HH", 65535, 65535)
put("image", "hostile-jpeg-65535x65535.jpg", bytes(big))
big[sof + 5:sof + 9] = struct.pack(">HH", 1, 65501)
put("image", "hostile-jpeg-65501-wide.jpg", bytes(big))
big[sof + 5:sof + 9] = struct.pack(">HH", 0, 0)
put("image", "hostile-jpeg-0x0.jpg", bytes(big))
sos = base.index(b"\xff\xda")
put("image", "hostile-jpeg-cut-mid-scan.jpg", base[:sos + (len(base) - sos) // 2])
put("image", "hostile-jpeg-no-eoi.jpg", base[:-2])
dqt = base.index(b"\xff\xdb")
put("image", "hostile-jpeg-junk-before-marker.jpg", base[:dqt] + b"\x12\x34\x56\x78" + base[dqt:])
damaged = bytearray(base)
for i in range(sos + 20, len(base) - 4, 7):
    damaged[i] ^= 0x5A
put("image", "hostile-jpeg-damaged-scan.jpg", bytes(damaged))
b = io.BytesIO(); img.save(b, "JPEG", quality=80, progressive=True); prog = b.getvalue()
put("image", "jpeg-progressive.jpg", prog)
put("image", "hostile-jpeg-progressive-cut.jpg", prog[:len(prog) * 2 // 3])
srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
exif = Image.Exif(); exif[0x0112] = 6
b = io.BytesIO(); img.save(b, "JPEG", quality=80, exif=exif.tobytes(), icc_profile=srgb)
put("image", "jpeg-exif-rot-icc.jpg", b.getvalue())
b = io.BytesIO(); img.save(b, "PNG", icc_profile=srgb, exif=exif.tobytes())
put("image", "png-exif-icc.png", b.getvalue())
b = io.BytesIO(); Image.new("CMYK", (8, 8), (10, 20, 30, 40)).save(b, "JPEG"); put("image", "jpeg-cmyk.jpg", b.getvalue())
for fmt, ext, kw in (("WEBP", "webp", {"lossless": True}), ("WEBP", "webp", {"quality": 50}),
                     ("TIFF", "tif", {}), ("TIFF", "tif", {"compression": "tiff_deflate"})):
    b = io.BytesIO(); Image.new("RGBA", (9, 7), (1, 2, 3, 128)).save(b, fmt, **kw)
    put("image", "small-%s-%s.%s" % (fmt.lower(), "-".join("%s%s" % kv for kv in kw.items()) or "plain", ext), b.getvalue())
b = io.BytesIO(); Image.new("I;16", (5, 5), 300).save(b, "PNG"); put("image", "png-16bit-gray.png", b.getvalue())

# Many scans (libjpeg, custom scan script): 300 successive-approximation scans of a 16x16 gray image.
csrc = r'''
#include <stdio.h>
#include <stdlib.h>
#include <jpeglib.h>
int main(int argc, char **argv) {
    int refine = atoi(argv[1]), w = atoi(argv[2]), h = atoi(argv[3]), samp = atoi(argv[4]);
    struct jpeg_compress_struct c; struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e); jpeg_create_compress(&c); jpeg_stdio_dest(&c, stdout);
    c.image_width = w; c.image_height = h; c.input_components = 1; c.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    c.comp_info[0].h_samp_factor = c.comp_info[0].v_samp_factor = samp;
    int n = 64 * (refine + 1), k = 0;
    jpeg_scan_info *s = calloc(n, sizeof *s);
    for (int ss = 0; ss < 64; ss++)
        for (int r = 0; r <= refine; r++) {
            jpeg_scan_info *sc = &s[k++]; sc->comps_in_scan = 1; sc->Ss = sc->Se = ss;
            sc->Ah = r == 0 ? 0 : refine - r + 1; sc->Al = refine - r;
        }
    c.scan_info = s; c.num_scans = n;
    jpeg_start_compress(&c, TRUE);
    unsigned char *row = malloc(w);
    while (c.next_scanline < (unsigned)h) {
        for (int x = 0; x < w; x++) row[x] = (unsigned char)(x * 4 + c.next_scanline);
        JSAMPROW rp = row; jpeg_write_scanlines(&c, &rp, 1);
    }
    jpeg_finish_compress(&c); return 0;
}
'''
with tempfile.TemporaryDirectory() as t:
    with open(os.path.join(t, "scans.c"), "w") as f:
        f.write(csrc)
    exe = os.path.join(t, "scans")
    subprocess.check_call(["cc", "-O1", "-o", exe, os.path.join(t, "scans.c"), "-ljpeg"])
    put("image", "hostile-jpeg-320-scans.jpg", subprocess.check_output([exe, "4", "16", "16", "1"]))
    put("image", "jpeg-128-scans.jpg", subprocess.check_output([exe, "1", "16", "16", "1"]))
    put("image", "hostile-jpeg-thin-4x4-sampling.jpg", subprocess.check_output([exe, "0", "1", "4000", "4"]))

# ---- models ---------------------------------------------------------------------------------
# The input is the .param text, a NUL, then the .bin bytes (tests/fuzz/fuzz_model.c).
for p in sorted(glob.glob(os.path.join(SHARED, "models", "*", "*.param"))):
    param = read(p)
    binp = p[:-len(".param")] + ".bin"
    head = read(binp)[:2048] if os.path.exists(binp) else b""
    name = os.path.basename(os.path.dirname(p)) + "-" + os.path.basename(p)[:-6]
    if len(param) + 1 + len(head) <= LIMIT:
        put("model", name + "-bin-cut", param + b"\0" + head)


def shrink_model(text):
    """A real .param with every channel count of 16 or more (but 48, 3 x 4^2 for a PixelShuffle)
    divided by 16, the weight counts worked out again, and a .bin of fp16 weights to match: the
    model's topology in a few KB."""
    chans = {}  # blob -> (original channels, new channels)
    out_lines, binparts = [], []
    shrink = lambda c: c // 16 if c >= 16 and c % 16 == 0 and c != 48 else c
    lines = text.decode().splitlines()
    out_lines += lines[:2]
    for line in lines[2:]:
        f = line.split()
        if not f:
            continue
        typ, name, nin, nout = f[0], f[1], int(f[2]), int(f[3])
        ins, outs, kv = f[4:4 + nin], f[4 + nin:4 + nin + nout], f[4 + nin + nout:]
        keys = dict(k.split("=", 1) for k in kv)
        cin = [chans.get(b, (3, 3)) for b in ins]
        co = cin[0] if cin else (3, 3)
        weights = []  # (count, tagged, bias count)
        if typ == "Input":
            c = int(keys.get("2", "3")); co = (c, c)
        elif typ in ("Convolution", "Deconvolution"):
            o = int(keys["0"]); n = shrink(o)
            kw = int(keys.get("1", "1")); kh = int(keys.get("11", kw))
            keys["6"] = str(n * co[1] * kw * kh)
            keys["0"] = str(n)
            weights.append((int(keys["6"]), True, n if keys.get("5", "0") == "1" else 0))
            co = (o, n)
        elif typ == "InnerProduct":
            o = int(keys["0"]); n = shrink(o)
            spatial = max(1, int(keys["2"]) // o // max(1, co[0]))
            keys["2"] = str(n * co[1] * spatial); keys["0"] = str(n)
            weights.append((int(keys["2"]), True, n if keys.get("1", "0") == "1" else 0))
            co = (o, n)
        elif typ == "PReLU":
            if int(keys.get("0", "1")) > 1:
                keys["0"] = str(co[1])
            weights.append((int(keys.get("0", "1")), False, 0))
        elif typ == "Scale":
            if keys.get("0", "0") != "-233":
                keys["0"] = str(co[1])
                weights.append((co[1], False, co[1] if keys.get("1", "0") == "1" else 0))
        elif typ == "Concat":
            co = (sum(c[0] for c in cin), sum(c[1] for c in cin))
        elif typ == "PixelShuffle":
            r = int(keys.get("0", "1")); co = (co[0] // (r * r), co[1] // (r * r))
        for b in outs:
            chans[b] = co
        kv = " ".join("%s=%s" % (k, v) for k, v in keys.items())
        out_lines.append(" ".join([typ, name, str(nin), str(nout)] + ins + outs + ([kv] if kv else [])))
        for count, tagged, nbias in weights:
            if tagged:
                data = struct.pack("<I", 0x01306B47) + struct.pack("<%de" % count, *[(i % 7 - 3) / 64 for i in range(count)])
                binparts.append(data + b"\0" * (-len(data) % 4))
            else:
                binparts.append(struct.pack("<%df" % count, *([0.25] * count)))
            binparts.append(struct.pack("<%df" % nbias, *([0.0] * nbias)))
    return ("\n".join(out_lines) + "\n").encode(), b"".join(binparts)


for p in sorted(glob.glob(os.path.join(SHARED, "models", "*", "*.param"))):
    if os.path.getsize(p) > LIMIT:
        continue
    param, binary = shrink_model(read(p))
    name = os.path.basename(os.path.dirname(p)) + "-" + os.path.basename(p)[:-6]
    if len(param) + 1 + len(binary) <= LIMIT:
        put("model", name + "-shrunk", param + b"\0" + binary)
conv = b"7767517\n2 2\nInput in 0 1 data 2=2\nConvolution c 1 1 data out 0=1 1=1 5=1 6=2\n"
half = b"\x47\x6B\x30\x01\x00\x3C\x00\xC0"
f32 = struct.pack("<ff", 1.0, -2.0)
bias = struct.pack("<f", 0.5)
put("model", "conv-fp16", conv + b"\0" + half + bias)
put("model", "conv-fp32-tag0", conv + b"\0" + b"\0\0\0\0" + f32 + bias)
put("model", "conv-fp32-tag-c056", conv + b"\0" + b"\x56\xC0\x02\x00" + f32 + bias)
table = bytearray(4 + 1024 + 4); table[0:4] = b"\x01\x02\x03\x04"
table[4 + 7 * 4:4 + 8 * 4] = struct.pack("<f", 1.0); table[4 + 200 * 4:4 + 201 * 4] = struct.pack("<f", -2.0)
table[4 + 1024] = 7; table[4 + 1025] = 200
put("model", "conv-quant-table", conv + b"\0" + bytes(table) + bias)
put("model", "conv-channel-mismatch", conv.replace(b"2=2", b"2=1") + b"\0" + half + bias)
put("model", "conv-bin-short", conv + b"\0" + half)
put("model", "conv-bin-extra", conv + b"\0" + half + bias + b"\0")
two = (b"7767517\n5 6\nInput in 0 1 data 2=3\nSplit sp 1 2 data a b\n"
       b"Convolution c 1 1 a ca 0=3 1=3 4=1 5=1 6=81 9=2 -23310=1,0.1\n"
       b"BinaryOp add 2 1 ca b sum 0=0\nPixelShuffle ps 1 1 sum out 0=1\n")
put("model", "split-conv-binop", two + b"\0" + b"\0\0\0\0" + struct.pack("<81f", *([0.01] * 81)) + struct.pack("<3f", 0, 0, 0))
lines = [b"7767517\n400 400\nInput in 0 1 b0 2=3\n"] + [b"Split s%d 1 1 b%d b%d\n" % (i, i - 1, i) for i in range(1, 400)]
put("model", "split-chain-400", b"".join(lines))
put("model", "too-many-layers", b"7767517\n100001 100001\nInput in 0 1 b0 2=3\n")
put("model", "bad-magic", b"7767518\n1 1\nInput in 0 1 b0\n")
put("model", "huge-weight-count", b"7767517\n2 2\nInput in 0 1 data 2=3\n"
    b"Convolution c 1 1 data out 0=2147483647 1=65535 5=1 6=2147483647\n\0\0\0\0\0")
put("model", "deconv-negative", b"7767517\n2 2\nInput in 0 1 data 2=3\n"
    b"Deconvolution d 1 1 data out 0=-3 1=-4 3=-2 4=-1 5=1 6=-12\n\0")
put("model", "array-param-long", b"7767517\n2 2\nInput in 0 1 data 2=3\n"
    b"Interp i 1 1 data out -23303=" + str(1 << 30).encode() + b"," + b",".join([b"1.5"] * 200) + b"\n")
print("corpus:", {k: len(os.listdir(os.path.join(OUT, k))) for k in ("graph", "image", "model")})
