#!/usr/bin/env python3
"""Known weights of waifu2x upconv_7 (anime_style_art_rgb), read straight from the .bin at fixed
byte offsets with numpy, independently of engine/nn_model.c. tests/unit/test_nn_model.c holds
the printed values as constants.

The first layer after Input is `Convolution conv1_layer ... 0=16 1=3 5=1 6=432`, so the .bin
starts with its weights: a 4-byte tag (47 6B 30 01 = fp16), 432 fp16 values (864 bytes), then
16 raw fp32 biases (NCNN-FORMAT.md section 2).

Usage: python3 tools/gen-nn-facts.py [../shared]
"""
import sys

import numpy as np

root = sys.argv[1] if len(sys.argv) > 1 else "../shared"
path = root + "/models/waifu2x-upconv_7_anime_style_art_rgb/scale2.0x_model.bin"
data = open(path, "rb").read()

tag = int(np.frombuffer(data, "<u4", 1, 0)[0])
assert tag == 0x01306B47, hex(tag)
halves = np.frombuffer(data, "<u2", 4, 4)
weights = halves.view("<f2").astype(np.float32)
bias_off = 4 + 432 * 2
bias = np.frombuffer(data, "<f4", 1, bias_off)

print("/* conv1_layer: tag 0x%08X; first 4 fp16 weights at byte 4, first bias at byte %d */"
      % (tag, bias_off))
for i, (h, w) in enumerate(zip(halves, weights)):
    print("W%d: 0x%04X = %.9g (bits 0x%08X)" % (i, h, w, w.view("<u4")))
print("B0: %.9g (bits 0x%08X)" % (bias[0], bias.view("<u4")[0]))
