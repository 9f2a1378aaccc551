/* Image metadata after decoding and before encoding (engine/meta.c): the EXIF orientation tag,
 * turning pixels upright, ICC profiles to sRGB through lcms2. */
#ifndef TSR_META_H
#define TSR_META_H

#include <stddef.h>

#include "codec.h"

/* The Orientation tag (0x0112) of IFD0 in an EXIF block (the TIFF structure after "Exif\0\0"):
 * 1..8, or 0 when the block is absent, damaged, or has no valid tag. Only IFD0 is read (no
 * offset is followed but the one to IFD0), every read is bounds-checked. */
int tsr__exif_orientation(const unsigned char *exif, size_t len);

/* A malloc'd copy of the block with its IFD0 Orientation set to 1 (the pixels saved beside it
 * are upright); a block without the tag, or one that cannot be parsed, is copied as it is. NULL
 * only when out of memory (or len is 0). */
unsigned char *tsr__exif_upright(const unsigned char *exif, size_t len);

/* The orientation a decoded file states: meta->orientation (TIFF), else its EXIF tag; 0: none. */
int tsr__meta_orientation(const tsr__meta *m);

/* *img turned upright from EXIF orientation o (2..8, as Pillow's ImageOps.exif_transpose and
 * vips autorot): a new image replaces *img (the old one is freed); 1 and unknown values leave
 * it. Non-zero: out of memory, *img unchanged. */
tsr_status tsr__orient_image(tsr_image **img, int o);

/* Convert img (1-4 channels; alpha, the 2nd or 4th, untouched) from the ICC profile to sRGB
 * through lcms2, perceptual intent, clamped to 0..1. A profile already equivalent to sRGB
 * leaves the pixels as they are. Returns 0 when converted (or already sRGB), 1 when the
 * profile was not used (lcms2 cannot read it, or its colour space does not fit the channels:
 * `why` says which), -1 when out of memory. */
int tsr__icc_to_srgb(tsr_image *img, const unsigned char *icc, size_t len, char *why,
                     size_t why_len);

/* The load options after a decode (decode_once): d->info turned by the orientation (probe
 * sizes are the upright ones), and, with pixels, d->img turned upright and converted to sRGB.
 * A profile that cannot be used is skipped with a warning through d->ctl->warn. */
tsr_status tsr__dec_apply_meta(tsr__dec *d);

/* The ICC profile and EXIF block of an image file (engine/image_io.c), from its header: no
 * pixel is decoded, no orientation or colour applied. *out is zeroed first; the caller frees it
 * (tsr__meta_free). */
tsr_status tsr__image_read_meta(const char *path, tsr__meta *out, tsr__err *err);

#endif
