"""Tessera from Python: a ctypes binding of the C API in engine/tessera.h (no compiled extension).

    import numpy as np, tessera
    with tessera.Engine(device="ref") as eng:
        graph = eng.load_graph("examples/invert.yaml")     # image.input "in" -> ... -> "out"
        with eng.job(graph, events=print) as job:
            job.bind_input("in", np.zeros((480, 640, 3), np.uint8))
            job.run()                                      # start + wait; Error if it failed
            out = job.output("out")                        # 480x640x3 float32, 0..1

The shared library is found in this order: $TESSERA_LIB (the file, or the folder holding it),
the build/ folder next to this file's python/ folder, then the system's library path.

Threads: an Engine may be used from several Python threads; a Graph by one at a time. Calls
that wait (Job.wait) release the GIL. Event callbacks run on the job's own thread (the engine's,
not a Python thread) holding the GIL while they run: keep them short. Job.cancel() is safe from
any thread.

Errors raise tessera.Error, with .status (a Status) and .message (the engine's text, which for
graph errors carries "file:line:col").

numpy is needed only for arrays (bind_input, output, Image.to_array, Image.from_array).
"""

import ctypes
import ctypes.util
import enum
import json
import os
import time
import weakref

try:
    import numpy as np
except ImportError:  # arrays are then unavailable; the rest works
    np = None

__all__ = [
    "Error", "Status", "Sample", "Engine", "Graph", "Job", "Image", "devices", "version",
    "library_path",
]


class Status(enum.IntEnum):
    """tsr_status: the numbers are stable."""

    OK = 0
    NOMEM = 1
    INVALID = 2
    IO = 3
    DECODE = 4
    LIMIT = 5
    GRAPH = 6
    DEVICE = 7
    DEVICE_NOMEM = 8
    BUILD = 9
    CANCELLED = 10
    UNSUPPORTED = 11
    NO_DEVICE = 12
    INTERNAL = 13
    BUSY = 14


class Sample(enum.IntEnum):
    """tsr_sample"""

    U8 = 1
    U16 = 2
    F32 = 3


_COPY, _BORROW = 0, 1  # tsr_ownership (TSR_HANDOVER has no use from Python)
_FORMATS = {"auto": 0, "png": 1, "jpeg": 2, "jpg": 2, "webp": 3, "tiff": 4, "tif": 4}
_TIFF_COMPRESSION = {None: 0, "none": 1, "lzw": 2, "deflate": 3}


def _status(rc):
    try:
        return Status(rc)
    except ValueError:  # a newer library's code
        return rc


class Error(Exception):
    """A failed call: .status (Status), .message (text from the engine)."""

    def __init__(self, status, message=""):
        self.status = _status(status)
        self.message = message or _status_str(status)
        super().__init__(self.message)

    def __repr__(self):
        name = self.status.name if isinstance(self.status, Status) else self.status
        return "tessera.Error(%s, %r)" % (name, self.message)


# ---- C declarations, mirroring engine/tessera.h field by field ----------------------------------

c_int, c_double, c_char_p, c_void_p = ctypes.c_int, ctypes.c_double, ctypes.c_char_p, \
    ctypes.c_void_p
c_size_t, c_int64, c_uint64 = ctypes.c_size_t, ctypes.c_int64, ctypes.c_uint64
c_enum = ctypes.c_int  # C enums with small values are int-sized


class DeviceInfo(ctypes.Structure):
    _fields_ = [
        ("index", c_int),
        ("is_gpu", c_int),
        ("name", ctypes.c_char * 256),
        ("vendor", ctypes.c_char * 128),
        ("platform", ctypes.c_char * 128),
        ("version", ctypes.c_char * 128),
        ("driver", ctypes.c_char * 128),
        ("global_mem", c_uint64),
        ("max_alloc", c_uint64),
        ("compute_units", ctypes.c_uint),
        ("cache_size", c_uint64),
    ]


class EngineOptions(ctypes.Structure):
    _fields_ = [
        ("device", c_char_p),
        ("cache_dir", c_char_p),
        ("max_pixels", c_uint64),
        ("vram_limit", c_uint64),
        ("staging_limit", c_uint64),
        ("mem_limit", c_uint64),
    ]


class PoolStats(ctypes.Structure):
    _fields_ = [
        (name, c_uint64)
        for name in ("cap_bytes", "in_use_bytes", "held_bytes", "peak_in_use_bytes",
                     "peak_held_bytes", "allocations", "hits", "misses", "trims", "oom_events")
    ]


class SaveOptions(ctypes.Structure):
    _fields_ = [
        ("format", c_enum),
        ("bit_depth", c_int),
        ("quality", c_int),
        ("compression", c_int),
        ("subsampling", c_int),
        ("background", ctypes.c_float * 3),
        ("lossless", c_int),
        ("tiff_compression", c_enum),
        ("icc", ctypes.c_void_p),
        ("icc_len", ctypes.c_size_t),
        ("exif", ctypes.c_void_p),
        ("exif_len", ctypes.c_size_t),
    ]


class CompareResult(ctypes.Structure):
    _fields_ = [("max_abs", c_double), ("mean_abs", c_double), ("psnr", c_double),
                ("ssim", c_double), ("levels", c_int)]


class Event(ctypes.Structure):
    _fields_ = [
        ("type", c_enum),
        ("name", c_char_p),
        ("json", c_char_p),
        ("job", c_void_p),
        ("node", c_char_p),
        ("node_type", c_char_p),
        ("node_index", c_int),
        ("node_count", c_int),
        ("index", c_int64),
        ("total", c_int64),
        ("progress", c_double),
        ("eta_s", c_double),
        ("seconds", c_double),
        ("elapsed_s", c_double),
        ("peak_device_bytes", c_uint64),
        ("status", c_enum),
        ("message", c_char_p),
        ("param", c_char_p),
        ("file", c_char_p),
        ("line", c_int),
        ("col", c_int),
        ("files", ctypes.POINTER(c_char_p)),
        ("n_files", c_int),
    ]


EVENT_FN = ctypes.CFUNCTYPE(None, c_void_p, ctypes.POINTER(Event))
FREE_FN = ctypes.CFUNCTYPE(None, c_void_p, c_void_p)


class RunOptions(ctypes.Structure):
    _fields_ = [
        ("event", EVENT_FN),
        ("user", c_void_p),
        ("tile_width", c_int),
        ("tile_height", c_int),
        ("dry_run", c_int),
        ("no_reuse", c_int),
    ]


class Pixels(ctypes.Structure):
    _fields_ = [
        ("data", c_void_p),
        ("width", c_int),
        ("height", c_int),
        ("channels", c_int),
        ("sample", c_enum),
        ("stride", c_size_t),
    ]


class JobStats(ctypes.Structure):
    _fields_ = [
        ("seconds", c_double),
        ("queued_seconds", c_double),
        ("nodes", c_int),
        ("nodes_run", c_int),
        ("nodes_reused", c_int),
        ("tiles", c_int64),
        ("downgrades", c_int64),
        ("kernels_compiled", c_int),
        ("kernels_from_cache", c_int),
        ("models_loaded", c_int),
        ("models_uploaded", c_int),
        ("reserved_bytes", c_uint64),
        ("peak_device_bytes", c_uint64),
        ("files_written", c_int),
        ("reserved_host_bytes", c_uint64),
    ]


# ---- the library -----------------------------------------------------------------------------

_SONAME = "libtessera.so.0"


def _find_library():
    env = os.environ.get("TESSERA_LIB")
    if env:  # explicit: no fallback that would hide a wrong path
        return os.path.join(env, _SONAME) if os.path.isdir(env) else env
    here = os.path.dirname(os.path.abspath(__file__))
    built = os.path.join(os.path.dirname(here), "build", _SONAME)
    if os.path.exists(built):
        return built
    return ctypes.util.find_library("tessera") or _SONAME


library_path = _find_library()
try:
    _lib = ctypes.CDLL(library_path)
except OSError as exc:
    raise ImportError("tessera: cannot load %s (%s): run `make`, or set TESSERA_LIB to the "
                      "library" % (library_path, exc)) from exc

P = ctypes.POINTER
_VP = P(c_void_p)


def _missing(name):
    def call(*args):
        raise Error(Status.UNSUPPORTED, "%s: not in %s (an older libtessera?)" % (name,
                                                                                   library_path))
    return call


def _fn(name, restype, *argtypes):
    try:
        f = getattr(_lib, name)
    except AttributeError:
        return _missing(name)
    f.restype = restype
    f.argtypes = argtypes
    return f


_status_str_c = _fn("tsr_status_str", c_char_p, c_enum)
_free = _fn("tsr_free", None, c_void_p)
_version = _fn("tsr_version", c_char_p)
_devices_list = _fn("tsr_devices_list", c_enum, P(P(DeviceInfo)), P(c_int), c_char_p, c_size_t)
_parse_size = _fn("tsr_parse_size", c_enum, c_char_p, c_uint64, P(c_uint64), c_char_p, c_size_t)
_engine_options_init = _fn("tsr_engine_options_init", None, P(EngineOptions))
_engine_new = _fn("tsr_engine_new", c_enum, P(EngineOptions), _VP, c_char_p, c_size_t)
_engine_free = _fn("tsr_engine_free", None, c_void_p)
_errmsg = _fn("tsr_errmsg", c_char_p, c_void_p)
_engine_device = _fn("tsr_engine_device", P(DeviceInfo), c_void_p)
_engine_is_ref = _fn("tsr_engine_is_ref", c_int, c_void_p)
_engine_pool_stats = _fn("tsr_engine_pool_stats", c_enum, c_void_p, c_int, P(PoolStats))
_engine_trim = _fn("tsr_engine_trim", None, c_void_p)
_engine_vram_limit = _fn("tsr_engine_vram_limit", c_uint64, c_void_p)
_engine_mem_limit = _fn("tsr_engine_mem_limit", c_uint64, c_void_p)
_nodes_json = _fn("tsr_nodes_json", c_void_p)
_image_new = _fn("tsr_image_new", c_enum, c_int, c_int, c_int, _VP)
_image_ref = _fn("tsr_image_ref", c_void_p, c_void_p)
_image_free = _fn("tsr_image_free", None, c_void_p)
_image_width = _fn("tsr_image_width", c_int, c_void_p)
_image_height = _fn("tsr_image_height", c_int, c_void_p)
_image_channels = _fn("tsr_image_channels", c_int, c_void_p)
_image_bit_depth = _fn("tsr_image_bit_depth", c_int, c_void_p)
_save_options_init = _fn("tsr_save_options_init", None, P(SaveOptions))
_image_read = _fn("tsr_image_read", c_enum, c_void_p, c_char_p, _VP)
_image_write = _fn("tsr_image_write", c_enum, c_void_p, c_void_p, c_char_p, P(SaveOptions))
_image_compare = _fn("tsr_image_compare", c_enum, c_void_p, c_void_p, c_void_p, P(CompareResult))
_graph_load_file = _fn("tsr_graph_load_file", c_enum, c_void_p, c_char_p, _VP)
_graph_load_string = _fn("tsr_graph_load_string", c_enum, c_void_p, c_char_p, c_char_p, _VP)
_graph_free = _fn("tsr_graph_free", None, c_void_p)
_graph_set = _fn("tsr_graph_set", c_enum, c_void_p, c_void_p, c_char_p)
_graph_set_many = _fn("tsr_graph_set_many", c_enum, c_void_p, c_void_p, P(c_char_p), c_int)
_graph_infer = _fn("tsr_graph_infer", c_enum, c_void_p, c_void_p)
_graph_plan_text = _fn("tsr_graph_plan_text", c_enum, c_void_p, c_void_p, P(RunOptions), _VP)
_image_from_pixels = _fn("tsr_image_from_pixels", c_enum, P(Pixels), _VP)
_image_to_pixels = _fn("tsr_image_to_pixels", c_enum, c_void_p, P(Pixels))
_image_decode = _fn("tsr_image_decode", c_enum, c_void_p, c_void_p, c_size_t, _VP)
_image_encode = _fn("tsr_image_encode", c_enum, c_void_p, c_void_p, P(SaveOptions), _VP,
                    P(c_size_t))
_job_new = _fn("tsr_job_new", c_enum, c_void_p, c_void_p, P(RunOptions), _VP)
_job_bind_input = _fn("tsr_job_bind_input", c_enum, c_void_p, c_char_p, P(Pixels), c_enum,
                      FREE_FN, c_void_p)
_job_bind_image = _fn("tsr_job_bind_image", c_enum, c_void_p, c_char_p, c_void_p)
_job_watch = _fn("tsr_job_watch", c_enum, c_void_p, c_char_p, c_int)
_job_start = _fn("tsr_job_start", c_enum, c_void_p)
_job_wait = _fn("tsr_job_wait", c_enum, c_void_p, c_int)
_job_cancel = _fn("tsr_job_cancel", None, c_void_p)
_job_is_running = _fn("tsr_job_is_running", c_int, c_void_p)
_job_status = _fn("tsr_job_status", c_enum, c_void_p)
_job_message = _fn("tsr_job_message", c_char_p, c_void_p)
_job_get_stats = _fn("tsr_job_get_stats", None, c_void_p, P(JobStats))
_job_stats_text = _fn("tsr_job_stats_text", c_void_p, c_void_p)
_job_output = _fn("tsr_job_output", c_enum, c_void_p, c_char_p, _VP)
_job_free = _fn("tsr_job_free", None, c_void_p)
_engine_interrupt = _fn("tsr_engine_interrupt", None, c_void_p)
_engine_set_result_cache = _fn("tsr_engine_set_result_cache", None, c_void_p, c_uint64)
_engine_result_cache_bytes = _fn("tsr_engine_result_cache_bytes", c_uint64, c_void_p)
_engine_stats = _fn("tsr_engine_stats", c_void_p, c_void_p)


def _status_str(rc):
    try:
        return _status_str_c(rc).decode()
    except Error:
        return "status %d" % rc


def _text(p):
    """A `const char *` (bytes or None) as str."""
    return p.decode("utf-8", "replace") if p else ""


def _take_text(p):
    """A `char *` the caller frees with tsr_free(), as str."""
    if not p:
        return ""
    try:
        return ctypes.string_at(p).decode("utf-8", "replace")
    finally:
        _free(p)


def _b(s):
    return s if isinstance(s, bytes) else os.fsencode(s) if isinstance(s, os.PathLike) \
        else str(s).encode()


def _quiet(close):
    """close() from __del__: at interpreter exit the module's globals may be gone already."""
    try:
        close()
    except Exception:
        pass


def _struct_dict(s):
    return {name: getattr(s, name) for name, _ in s._fields_}


def version():
    """The library's version string, e.g. "0.1.0"."""
    return _text(_version())


def devices():
    """Every OpenCL device, as dicts (tsr_device_info fields); [] without OpenCL."""
    arr, count, msg = P(DeviceInfo)(), c_int(0), ctypes.create_string_buffer(1024)
    rc = _devices_list(ctypes.byref(arr), ctypes.byref(count), msg, len(msg))
    if rc == Status.NO_DEVICE:
        return []
    if rc:
        raise Error(rc, _text(msg.value))
    try:
        return [_device_dict(arr[i]) for i in range(count.value)]
    finally:
        _free(ctypes.cast(arr, c_void_p))


def _device_dict(d):
    out = _struct_dict(d)
    for k in ("name", "vendor", "platform", "version", "driver"):
        out[k] = _text(out[k])
    out["is_gpu"] = bool(out["is_gpu"])
    return out


def _size(value, what):
    """Bytes from an int or a size text ("512M", "2G"); None: 0 (the default)."""
    if value is None:
        return 0
    if isinstance(value, int):
        if value < 0:
            raise ValueError("%s: negative size" % what)
        return value
    out, msg = c_uint64(0), ctypes.create_string_buffer(512)
    rc = _parse_size(_b(value), 0, ctypes.byref(out), msg, len(msg))
    if rc:
        raise Error(rc, _text(msg.value))
    return out.value


# ---- pixels ----------------------------------------------------------------------------------

def _need_numpy():
    if np is None:
        raise ImportError("tessera: numpy is needed for arrays (pip install numpy)")


_SAMPLES = None


def _samples():
    global _SAMPLES
    if _SAMPLES is None:
        _SAMPLES = {np.dtype(np.uint8): Sample.U8, np.dtype(np.uint16): Sample.U16,
                    np.dtype(np.float32): Sample.F32}
    return _SAMPLES


def _pixels_of(array):
    """A Pixels describing `array` (HxW or HxWxC; uint8, uint16 or float32) and the array that
    must stay alive while the engine reads it. Rows may be anywhere in memory (the row stride is
    passed as is); samples within a row must be packed, else the array is copied first."""
    _need_numpy()
    a = np.asarray(array)
    if a.dtype == np.float64:  # a common result of numpy arithmetic
        a = a.astype(np.float32)
    if a.dtype.newbyteorder("=") not in _samples():
        raise TypeError("tessera: pixels must be uint8, uint16 or float32, not %s" % a.dtype)
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or not 1 <= a.shape[2] <= 4:
        raise ValueError("tessera: pixels must be HxW or HxWxC with C in 1..4, not shape %s"
                         % (np.shape(array),))
    h, w, c = a.shape
    if h < 1 or w < 1:
        raise ValueError("tessera: empty image %dx%d" % (w, h))
    item = a.dtype.itemsize
    packed_row = (c == 1 or a.strides[2] == item) and (w == 1 or a.strides[1] == c * item)
    if not packed_row or a.strides[0] < w * c * item or a.strides[0] % item or \
            not a.flags.aligned:
        a = np.ascontiguousarray(a)  # also negative, overlapping or odd row strides
    px = Pixels(data=a.ctypes.data, width=w, height=h, channels=c,
                sample=_samples()[a.dtype], stride=a.strides[0])
    return px, a


def _image_to_array(handle, dtype):
    _need_numpy()
    dt = np.dtype(dtype)
    if dt not in _samples():
        raise TypeError("tessera: output dtype must be uint8, uint16 or float32, not %s" % dt)
    h, w, c = _image_height(handle), _image_width(handle), _image_channels(handle)
    out = np.empty((h, w, c), dt)
    px = Pixels(data=out.ctypes.data, width=w, height=h, channels=c, sample=_samples()[dt],
                stride=out.strides[0])
    rc = _image_to_pixels(handle, ctypes.byref(px))
    if rc:
        raise Error(rc, "tsr_image_to_pixels: %s" % _status_str(rc))
    return out


def _save_options(format, bit_depth, quality, compression, subsampling, lossless=False,
                  tiff_compression=None):
    o = SaveOptions()
    _save_options_init(ctypes.byref(o))
    try:
        o.format = _FORMATS[str(format).lower()]
    except KeyError:
        raise ValueError("tessera: format must be png, jpeg, webp or tiff, not %r"
                         % (format,)) from None
    try:
        o.tiff_compression = _TIFF_COMPRESSION[tiff_compression]
    except KeyError:
        raise ValueError("tessera: tiff_compression must be none, lzw or deflate, not %r"
                         % (tiff_compression,)) from None
    o.lossless = 1 if lossless else 0
    if bit_depth is not None:
        o.bit_depth = bit_depth
    if quality is not None:
        o.quality = quality
    if compression is not None:
        o.compression = compression
    if subsampling is not None:
        o.subsampling = subsampling
    return o


class Image:
    """A refcounted host image: float32 planar, 1-4 channels, nominally 0..1."""

    def __init__(self, handle):
        self._h = handle  # one reference, ours

    @classmethod
    def from_array(cls, array):
        """A new image holding a converted copy of array (HxW or HxWxC, uint8/uint16/float32)."""
        px, keep = _pixels_of(array)
        h = c_void_p()
        rc = _image_from_pixels(ctypes.byref(px), ctypes.byref(h))
        del keep
        if rc:
            raise Error(rc, "tsr_image_from_pixels: %s" % _status_str(rc))
        return cls(h.value)

    @property
    def handle(self):
        if not self._h:
            raise ValueError("tessera: the image is closed")
        return self._h

    width = property(lambda self: _image_width(self.handle))
    height = property(lambda self: _image_height(self.handle))
    channels = property(lambda self: _image_channels(self.handle))
    bit_depth = property(lambda self: _image_bit_depth(self.handle))
    shape = property(lambda self: (self.height, self.width, self.channels))

    def to_array(self, dtype="float32"):
        """HxWxC interleaved copy; integer types are clamped and rounded, float is not."""
        return _image_to_array(self.handle, dtype)

    def close(self):
        h, self._h = self._h, None
        if h:
            _image_free(h)

    def __del__(self):
        _quiet(self.close)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        if not self._h:
            return "<tessera.Image closed>"
        return "<tessera.Image %dx%d, %d channels>" % (self.width, self.height, self.channels)


# ---- engine ----------------------------------------------------------------------------------

class Engine:
    """A device with its memory pool, kernels and models; jobs on it run side by side.

    device: None ($TSR_DEVICE, else the first GPU, else the first device), "ref" (plain C, no
    OpenCL), an index ("0") or part of a device name. vram_limit: bytes or a size text ("512M");
    None: the default rule. mem_limit: the host memory budget, the same way (a size text, not a
    percentage). cache_dir, max_pixels, staging_limit: as tsr_engine_options."""

    def __init__(self, device=None, vram_limit=None, cache_dir=None, max_pixels=None,
                 staging_limit=None, mem_limit=None):
        self._h = None
        self._children = weakref.WeakSet()  # graphs and jobs, closed before the engine
        opt = EngineOptions()
        _engine_options_init(ctypes.byref(opt))
        self._device = _b(device) if device is not None else None
        self._cache_dir = _b(cache_dir) if cache_dir is not None else None
        opt.device = self._device
        opt.cache_dir = self._cache_dir
        opt.max_pixels = _size(max_pixels, "max_pixels")
        opt.vram_limit = _size(vram_limit, "vram_limit")
        opt.staging_limit = _size(staging_limit, "staging_limit")
        opt.mem_limit = _size(mem_limit, "mem_limit")
        h, msg = c_void_p(), ctypes.create_string_buffer(2048)
        rc = _engine_new(ctypes.byref(opt), ctypes.byref(h), msg, len(msg))
        if rc:
            raise Error(rc, _text(msg.value))
        self._h = h.value

    @property
    def handle(self):
        if not self._h:
            raise ValueError("tessera: the engine is closed")
        return self._h

    def _check(self, rc):
        """Raise the calling thread's last engine message for a failed status."""
        if rc:
            raise Error(rc, _text(_errmsg(self._h)))

    def close(self):
        """Free the engine, after closing (cancelling) its jobs and freeing its graphs."""
        if not self._h:
            return
        for child in list(self._children):
            child.close()
        h, self._h = self._h, None
        _engine_free(h)

    def __del__(self):
        _quiet(self.close)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def device(self):
        """The device as a dict (tsr_device_info fields)."""
        return _device_dict(_engine_device(self.handle).contents)

    @property
    def is_ref(self):
        return bool(_engine_is_ref(self.handle))

    @property
    def vram_limit(self):
        return _engine_vram_limit(self.handle)

    @property
    def mem_limit(self):
        return _engine_mem_limit(self.handle)

    def pool_stats(self, staging=False):
        s = PoolStats()
        self._check(_engine_pool_stats(self.handle, int(bool(staging)), ctypes.byref(s)))
        return _struct_dict(s)

    def trim(self):
        _engine_trim(self.handle)

    def interrupt(self):
        """Cancel every job of this engine (any thread)."""
        _engine_interrupt(self.handle)

    def set_result_cache(self, max_bytes):
        _engine_set_result_cache(self.handle, _size(max_bytes, "max_bytes"))

    @property
    def result_cache_bytes(self):
        return _engine_result_cache_bytes(self.handle)

    def stats(self):
        """Statistics of the last blocking run, as "key: value" text."""
        return _take_text(_engine_stats(self.handle))

    @staticmethod
    def nodes():
        """Schema of every node type (the JSON of tsr_nodes_json, parsed)."""
        return json.loads(_take_text(_nodes_json()))

    # graphs and jobs
    def load_graph(self, path):
        return Graph(self, path=path)

    def graph_from_string(self, text, name="<string>"):
        return Graph(self, text=text, name=name)

    def job(self, graph, events=None, tile=None, dry_run=False, no_reuse=False):
        return Job(self, graph, events=events, tile=tile, dry_run=dry_run, no_reuse=no_reuse)

    # images
    def read_image(self, path):
        h = c_void_p()
        self._check(_image_read(self.handle, _b(path), ctypes.byref(h)))
        return Image(h.value)

    def write_image(self, image, path, format="auto", bit_depth=None, quality=None,
                    compression=None, subsampling=None, lossless=False, tiff_compression=None):
        o = _save_options(format, bit_depth, quality, compression, subsampling, lossless,
                          tiff_compression)
        self._check(_image_write(self.handle, image.handle, _b(path), ctypes.byref(o)))

    def decode(self, data):
        """An Image from PNG, JPEG, WebP or TIFF bytes (format sniffed; the engine's pixel
        limit)."""
        buf = bytes(data)
        h = c_void_p()
        self._check(_image_decode(self.handle, buf, len(buf), ctypes.byref(h)))
        return Image(h.value)

    def encode(self, image, format="png", bit_depth=None, quality=None, compression=None,
               subsampling=None, lossless=False, tiff_compression=None):
        """PNG, JPEG, WebP or TIFF bytes of an Image (or of an array, converted first)."""
        if not isinstance(image, Image):
            image = Image.from_array(image)
        o = _save_options(format, bit_depth, quality, compression, subsampling, lossless,
                          tiff_compression)
        if o.format == 0:
            raise ValueError("tessera: encode needs format png, jpeg, webp or tiff")
        buf, n = c_void_p(), c_size_t(0)
        self._check(_image_encode(self.handle, image.handle, ctypes.byref(o), ctypes.byref(buf),
                                  ctypes.byref(n)))
        try:
            return ctypes.string_at(buf.value, n.value)
        finally:
            _free(buf.value)

    def compare(self, a, b):
        r = CompareResult()
        self._check(_image_compare(self.handle, a.handle, b.handle, ctypes.byref(r)))
        return _struct_dict(r)


# ---- graphs ----------------------------------------------------------------------------------

class Graph:
    """A parsed, validated graph (from a YAML file, or a string). One thread at a time."""

    def __init__(self, engine, path=None, text=None, name="<string>"):
        if (path is None) == (text is None):
            raise ValueError("tessera: Graph needs a path or a text")
        self._h = None
        self.engine = engine
        h = c_void_p()
        if path is not None:
            rc = _graph_load_file(engine.handle, _b(path), ctypes.byref(h))
        else:
            rc = _graph_load_string(engine.handle, _b(text), _b(name), ctypes.byref(h))
        engine._check(rc)
        self._h = h.value
        engine._children.add(self)

    @classmethod
    def from_file(cls, engine, path):
        return cls(engine, path=path)

    @classmethod
    def from_string(cls, engine, text, name="<string>"):
        return cls(engine, text=text, name=name)

    @property
    def handle(self):
        if not self._h:
            raise ValueError("tessera: the graph is freed")
        return self._h

    def set(self, assignment, value=None):
        """Override a parameter: set("node.param=value") or set("node.param", value)."""
        if value is not None:
            if isinstance(value, bool):
                value = "true" if value else "false"
            assignment = "%s=%s" % (assignment, value)
        self.engine._check(_graph_set(self.engine.handle, self.handle, _b(assignment)))
        return self

    def set_many(self, assignments):
        """Override several parameters together, then check them, so their order does not
        matter: a list of "node.param=value" or a dict {"node.param": value}. An empty value
        removes an optional param (or restores its default). On an error nothing changes."""
        if isinstance(assignments, dict):
            assignments = ["%s=%s" % (k, ("true" if v else "false") if isinstance(v, bool)
                                      else v) for k, v in assignments.items()]
        items = [_b(a) for a in assignments]
        arr = (c_char_p * max(len(items), 1))(*items)
        self.engine._check(_graph_set_many(self.engine.handle, self.handle, arr, len(items)))
        return self

    def infer(self):
        self.engine._check(_graph_infer(self.engine.handle, self.handle))

    def plan_text(self, tile=None):
        ro = RunOptions()
        if tile:
            ro.tile_width, ro.tile_height = tile
        out = c_void_p()
        self.engine._check(_graph_plan_text(self.engine.handle, self.handle, ctypes.byref(ro),
                                            ctypes.byref(out)))
        return _take_text(out.value)

    def free(self):
        h, self._h = self._h, None
        if h:
            _graph_free(h)

    close = free

    def __del__(self):
        _quiet(self.free)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.free()


# ---- jobs ------------------------------------------------------------------------------------

def _event_dict(ev):
    """The event as a dict: its JSON, parsed (the fields when the JSON cannot be read)."""
    if ev.json:
        try:
            return json.loads(ev.json)
        except ValueError:
            pass
    d = {"event": _text(ev.name)}
    for k in ("node", "node_type", "message", "param", "file"):
        v = getattr(ev, k)
        if v:
            d[k] = _text(v)
    for k in ("node_index", "node_count", "index", "total", "progress", "eta_s", "seconds",
              "elapsed_s", "peak_device_bytes", "status", "line", "col"):
        d[k] = getattr(ev, k)
    d["files"] = [_text(ev.files[i]) for i in range(ev.n_files)]
    return d


class _Callback:
    """The C callback and its state, kept alive (by the Job) until the job is freed. It holds no
    reference to the Job itself, so a Job being collected never meets a callback in flight."""

    def __init__(self, fn):
        self.fn = fn
        self.error = None  # the first exception the Python callable raised
        self.job_handle = None
        self.cfunc = EVENT_FN(self._call)

    def _call(self, user, ev_ptr):
        if self.error is not None:
            return
        try:
            self.fn(_event_dict(ev_ptr.contents))
        except BaseException as exc:  # nothing may unwind into C: keep it for Job.wait
            self.error = exc
            if self.job_handle:
                _job_cancel(self.job_handle)


class Job:
    """One asynchronous run of a graph: bind inputs, start, wait, fetch outputs.

    events: a callable receiving each event as a dict (the event's JSON, chaiNNer's vocabulary:
    chain-start, node-start, node-progress, node-finish, execution-error, finish...). It runs on
    the job's thread. If it raises, the job is cancelled and wait() raises that exception.
    tile: (width, height) forces a tile size. dry_run: plan only. no_reuse: bypass the result
    cache."""

    def __init__(self, engine, graph, events=None, tile=None, dry_run=False, no_reuse=False):
        self._h = None
        self._started = False
        self.engine = engine  # the engine outlives the job
        self._keep = []  # arrays lent with borrow=True
        self._cb = _Callback(events) if events is not None else None
        ro = RunOptions()
        if self._cb:
            ro.event = self._cb.cfunc
        if tile:
            ro.tile_width, ro.tile_height = tile
        ro.dry_run = int(bool(dry_run))
        ro.no_reuse = int(bool(no_reuse))
        h = c_void_p()
        engine._check(_job_new(engine.handle, graph.handle, ctypes.byref(ro), ctypes.byref(h)))
        self._h = h.value
        if self._cb:
            self._cb.job_handle = self._h
        engine._children.add(self)

    @property
    def handle(self):
        if not self._h:
            raise ValueError("tessera: the job is closed")
        return self._h

    def bind_input(self, node, array, borrow=False):
        """Hand pixels to image.input `node`: an HxW or HxWxC (C 1-4) uint8, uint16 or float32
        array (float64 is converted), any row stride. Copied during the call, unless borrow:
        then read while the job runs, and kept referenced (unchanged, please) until close()."""
        px, keep = _pixels_of(array)
        rc = _job_bind_input(self.handle, _b(node), ctypes.byref(px), _BORROW if borrow else _COPY,
                             FREE_FN(), None)
        self.engine._check(rc)
        if borrow:
            self._keep.append(keep)
        return self

    def bind_image(self, node, image):
        self.engine._check(_job_bind_image(self.handle, _b(node), image.handle))
        return self

    def watch(self, node, max_side=0):
        """Keep `node`'s output for output() (a preview: longer side at most max_side)."""
        self.engine._check(_job_watch(self.handle, _b(node), int(max_side)))
        return self

    def start(self):
        """Start on a thread of the engine's; returns at once."""
        self.engine._check(_job_start(self.handle))
        self._started = True
        return self

    def wait(self, timeout=None):
        """Wait for the end, at most timeout seconds (None: no limit). True when the job ended
        (see status), False when the time ran out. Waits in slices so that Ctrl-C (and other
        signals) reach Python meanwhile; the GIL is released while it waits."""
        if not self._started:
            raise Error(Status.INVALID, "Job.wait: the job was not started")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            slice_ms = 100
            if deadline is not None:
                left = deadline - time.monotonic()
                slice_ms = max(0, min(slice_ms, int(left * 1000)))
            rc = _job_wait(self.handle, slice_ms)
            if rc != Status.BUSY:
                break
            if deadline is not None and time.monotonic() >= deadline:
                return False
        if self._cb and self._cb.error is not None:
            exc, self._cb.error = self._cb.error, None
            raise exc
        return True

    def run(self, timeout=None):
        """start() (if not started yet), wait(), and raise Error if the job failed."""
        if not self._started:
            self.start()
        if not self.wait(timeout):
            raise Error(Status.BUSY, "Job.run: still running after %s s" % timeout)
        self.raise_for_status()
        return self

    def raise_for_status(self):
        """Raise Error if the job ended with a failure."""
        if self._started and not self.is_running:
            rc = _job_status(self.handle)
            if rc:
                raise Error(rc, self.message)

    def cancel(self):
        """Ask the job to stop: any thread, any time; it ends with Status.CANCELLED."""
        if self._h:
            _job_cancel(self._h)

    @property
    def is_running(self):
        return bool(_job_is_running(self.handle))

    @property
    def status(self):
        """Status.BUSY while running, Status.INVALID before the start, else the result."""
        return _status(_job_status(self.handle))

    @property
    def message(self):
        return _text(_job_message(self.handle))

    @property
    def stats(self):
        """tsr_job_stats as a dict (complete once the job ended)."""
        s = JobStats()
        _job_get_stats(self.handle, ctypes.byref(s))
        return _struct_dict(s)

    def stats_text(self):
        return _take_text(_job_stats_text(self.handle))

    def output_image(self, node):
        """The Image kept for `node` (an image.output, or a watched node)."""
        h = c_void_p()
        self.engine._check(_job_output(self.handle, _b(node), ctypes.byref(h)))
        return Image(h.value)

    def output(self, node, dtype="float32"):
        """The image kept for `node` as an HxWxC numpy array (float32 0..1 by default; uint8
        and uint16 are clamped and rounded)."""
        with self.output_image(node) as img:
            return img.to_array(dtype)

    def close(self):
        """Cancel if running, wait for the end, free the job."""
        h, self._h = self._h, None
        if h:
            _job_free(h)  # joins the job's thread: no callback runs after this
        self._keep = []
        self._cb = None

    free = close

    def __del__(self):
        _quiet(self.close)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
