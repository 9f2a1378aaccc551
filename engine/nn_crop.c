/* Crop's kept box, shared by the shape function, the reference and the device path so that
 * all three cut the same window. Semantics: NCNN-FORMAT.md section 4, Crop. */
#include "nn.h"

static tsr_status crop_fail(const tsr_nn_layer *L, tsr__err *err, const char *what, int axis,
                            long long off, long long size, const tsr_nn_shape *a)
{
    static const char *const name[3] = {"channels", "height", "width"};
    if (a->dims == 3)
        return tsr__seterr(err, TSR_ERR_INVALID,
                           "layer '%s' (Crop, line %d): %s: %s offset %lld, size %lld on input "
                           "%dx%dx%d, expected a non-empty box inside it",
                           L->name ? L->name : "?", L->line, what, name[axis], off, size, a->c,
                           a->h, a->w);
    return tsr__seterr(err, TSR_ERR_INVALID,
                       "layer '%s' (Crop, line %d): %s: offset %lld, size %lld on a vector of %d, "
                       "expected a non-empty range inside it",
                       L->name ? L->name : "?", L->line, what, off, size, a->c);
}

tsr_status tsr__nn_crop_box(const tsr_nn_layer *L, const tsr_nn_shape *in, int off[3],
                            tsr_nn_shape *out, tsr__err *err)
{
    const tsr_nn_shape *A = &in[0];
    int dims = A->dims == 3 ? 3 : 1;
    long long sz[3] = {A->c, dims == 3 ? A->h : 1, dims == 3 ? A->w : 1};
    long long o[3] = {0, 0, 0}, s[3] = {sz[0], sz[1], sz[2]};
    if (L->n_in >= 2) { /* reference form: A cut to B's size */
        const tsr_nn_shape *B = &in[1];
        if (dims != 3)
            return crop_fail(L, err, "a reference crop needs a 3-D input", 0, 0, 0, A);
        o[0] = L->coffset, o[1] = L->hoffset, o[2] = L->woffset;
        s[1] = B->h, s[2] = B->w;
        s[0] = B->dims == 3 ? B->c : A->c;
    } else if (L->n_starts > 0 && L->n_ends > 0) { /* numpy-style slice */
        int n = L->n_starts < L->n_ends ? L->n_starts : L->n_ends;
        for (int i = 0; i < n; i++) {
            int ax = L->n_axes > i ? L->axes[i] : i;
            if (ax < 0)
                ax += dims;
            if (ax < 0 || ax >= dims)
                return crop_fail(L, err, "axis out of range", 0, ax, 0, A);
            long long len = sz[ax], st = L->starts[i], en = L->ends[i];
            if (st == -233)
                st = 0;
            if (en == -233)
                en = len;
            long long start = st >= 0 ? st : len + st;
            long long end = en > 0 ? en : len + en;
            if (end > len)
                end = len;
            o[ax] = start;
            s[ax] = end - start;
        }
    } else { /* legacy offsets and sizes; a vector's length is w to ncnn */
        long long offs[3] = {L->coffset, L->hoffset, L->woffset};
        long long offs2[3] = {L->coffset2, L->hoffset2, L->woffset2};
        long long outs[3] = {L->outc, L->outh, L->outw};
        if (dims == 1) {
            offs[0] = L->woffset, offs2[0] = L->woffset2, outs[0] = L->outw;
            offs[1] = offs[2] = offs2[1] = offs2[2] = outs[1] = outs[2] = 0;
        }
        for (int k = 0; k < 3; k++) {
            o[k] = offs[k];
            s[k] = sz[k] - offs[k] - offs2[k];
            if (outs[k] > 0 && outs[k] < s[k])
                s[k] = outs[k];
        }
    }
    for (int k = 0; k < dims; k++)
        if (s[k] <= 0 || o[k] < 0 || o[k] + s[k] > sz[k])
            return crop_fail(L, err, "the crop box does not fit", k, o[k], s[k], A);
    if (dims == 1)
        o[1] = o[2] = 0, s[1] = s[2] = 1;
    for (int k = 0; k < 3; k++)
        off[k] = (int)o[k];
    *out = (tsr_nn_shape){dims, (int)s[0], (int)s[1], (int)s[2]};
    return TSR_OK;
}
