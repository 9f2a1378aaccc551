"""Tests of the Python binding (python/tessera.py) against a built libtessera.so.0.

    python3 python/test_tessera.py [-v]          # TESSERA_LIB=... to pick the library

Run by tests/cli/test_python.sh (make test). Needs numpy; a C compiler only for the layout
test (skipped without one).
"""

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import tessera  # noqa: E402

INVERT = """version: 1
nodes:
  in:  { type: image.input }
  neg: { type: adjust.invert, inputs: { image: in.image } }
  out: { type: image.output, inputs: { image: neg.image } }
"""

BLUR = """version: 1
nodes:
  in:   { type: image.input }
  soft: { type: blur.gaussian, inputs: { image: in.image }, params: { sigma: 8 } }
  out:  { type: image.output, inputs: { image: soft.image } }
"""

SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(np.float32): 1.0}


def random_pixels(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return rng.random(shape, dtype=np.float32)
    return rng.integers(0, int(SCALE[dtype]) + 1, size=shape, dtype=dtype)


def inverted(x):
    """adjust.invert in numpy: 1 - x on colour channels, alpha (2 and 4 channels) unchanged."""
    v = np.asarray(x, np.float64) / SCALE[np.dtype(x.dtype)]
    if v.ndim == 2:
        v = v[:, :, None]
    out = 1.0 - v
    if v.shape[2] in (2, 4):
        out[:, :, -1] = v[:, :, -1]
    return out


def engines_under_test():
    """The reference engine always; the first OpenCL device too when there is one."""
    names = ["ref"]
    if tessera.devices():
        names.append("0")
    return names


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.engines = {name: tessera.Engine(device=name) for name in engines_under_test()}
        cls.ref = cls.engines["ref"]

    @classmethod
    def tearDownClass(cls):
        for e in cls.engines.values():
            e.close()

    def run_invert(self, eng, array):
        with eng.graph_from_string(INVERT, "invert.yaml") as g, eng.job(g) as job:
            job.bind_input("in", array)
            job.run(timeout=60)
            return job.output("out")


class TestLibrary(unittest.TestCase):
    def test_version(self):
        self.assertRegex(tessera.version(), r"^\d+\.\d+\.\d+$")

    def test_status_text_and_error(self):
        e = tessera.Error(tessera.Status.GRAPH, "g.yaml:1:2: error: x")
        self.assertEqual(e.status, tessera.Status.GRAPH)
        self.assertEqual(str(e), "g.yaml:1:2: error: x")
        self.assertTrue(tessera.Error(tessera.Status.CANCELLED).message)

    @unittest.skipUnless(shutil.which(os.environ.get("CC", "cc")), "no C compiler")
    def test_struct_layout_matches_the_header(self):
        """Every ctypes mirror has the C struct's size and each field's offset."""
        structs = {
            "tsr_device_info": tessera.DeviceInfo, "tsr_engine_options": tessera.EngineOptions,
            "tsr_pool_stats": tessera.PoolStats, "tsr_save_options": tessera.SaveOptions,
            "tsr_compare_result": tessera.CompareResult, "tsr_event": tessera.Event,
            "tsr_run_options": tessera.RunOptions, "tsr_pixels": tessera.Pixels,
            "tsr_job_stats": tessera.JobStats,
        }
        lines, expect = [], []
        for cname, cls in structs.items():
            lines.append('printf("%s %%zu\\n", sizeof(%s));' % (cname, cname))
            expect.append("%s %d" % (cname, ctypes.sizeof(cls)))
            for field, _ in cls._fields_:
                lines.append('printf("%s.%s %%zu\\n", offsetof(%s, %s));'
                             % (cname, field, cname, field))
                expect.append("%s.%s %d" % (cname, field, getattr(cls, field).offset))
        src = ("#include <stddef.h>\n#include <stdio.h>\n#include \"tessera.h\"\n"
               "int main(void) {\n%s\nreturn 0;\n}\n" % "\n".join(lines))
        with tempfile.TemporaryDirectory() as tmp:
            c, exe = os.path.join(tmp, "layout.c"), os.path.join(tmp, "layout")
            with open(c, "w") as f:
                f.write(src)
            subprocess.run([os.environ.get("CC", "cc"), "-std=c11", "-I",
                            os.path.join(ROOT, "engine"), "-o", exe, c], check=True)
            got = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
        self.assertEqual(got.split("\n")[:-1], expect)

    def test_bad_device_raises(self):
        with self.assertRaises(tessera.Error) as cm:
            tessera.Engine(device="no such device 7f3a")
        self.assertEqual(cm.exception.status, tessera.Status.NO_DEVICE)
        self.assertIn("no such device 7f3a", cm.exception.message)

    def test_engine_options(self):
        with tessera.Engine(device="ref", vram_limit="256M") as eng:
            self.assertTrue(eng.is_ref)
            self.assertEqual(eng.device["name"], "reference (plain C)")
            self.assertEqual(eng.vram_limit, 0)  # no device memory on the reference engine
        if tessera.devices():
            with tessera.Engine(device="0", vram_limit="256M") as eng:
                self.assertFalse(eng.is_ref)
                self.assertEqual(eng.vram_limit, 256 << 20)
                self.assertEqual(eng.pool_stats()["cap_bytes"], 256 << 20)
        with self.assertRaises(tessera.Error) as cm:
            tessera.Engine(device="ref", vram_limit="lots")
        self.assertEqual(cm.exception.status, tessera.Status.INVALID)

    def test_close_is_idempotent_and_closes_children(self):
        eng = tessera.Engine(device="ref")
        g = eng.graph_from_string(INVERT)
        job = eng.job(g)
        eng.close()
        eng.close()
        with self.assertRaises(ValueError):
            job.start()
        with self.assertRaises(ValueError):
            g.set("neg.x=1")


class TestPixels(Base):
    def test_invert_every_type_and_channel_count(self):
        rng = np.random.default_rng(1)
        for name, eng in self.engines.items():
            for dtype in (np.uint8, np.uint16, np.float32):
                for shape in ((37, 53), (37, 53, 1), (37, 53, 2), (37, 53, 3), (37, 53, 4)):
                    with self.subTest(engine=name, dtype=np.dtype(dtype).name, shape=shape):
                        x = random_pixels(rng, shape, dtype)
                        out = self.run_invert(eng, x)
                        self.assertEqual(out.dtype, np.float32)
                        self.assertEqual(out.shape, shape if len(shape) == 3 else shape + (1,))
                        np.testing.assert_allclose(out, inverted(x), rtol=0, atol=2e-6)

    def test_invert_non_contiguous_arrays(self):
        rng = np.random.default_rng(2)
        big = random_pixels(rng, (90, 120, 4), np.uint8)
        big16 = random_pixels(rng, (90, 120, 3), np.uint16)
        views = {
            "rows and columns cut (row stride passed)": big[10:70, 20:100],
            "every other row": big[::2],
            "rows upside down": big[::-1],
            "every third column": big[5:80, 3:110:3],
            "three channels of four": big[:, :, :3],
            "one channel": big[:, :, 1],
            "transposed": big.transpose(1, 0, 2),
            "fortran order": np.asfortranarray(big16),
            "uint16 window": big16[7:50, 9:61],
            "float32 window": (big.astype(np.float32) / 255)[3:40, 4:44],
        }
        for what, x in views.items():
            with self.subTest(what):
                self.assertFalse(x.flags.c_contiguous and what != "fortran order")
                out = self.run_invert(self.ref, x)
                np.testing.assert_allclose(out, inverted(x), rtol=0, atol=2e-6)

    def test_row_stride_is_passed_not_copied(self):
        big = np.zeros((50, 60, 3), np.uint16)
        px, keep = tessera._pixels_of(big[5:30, 7:40])
        self.assertTrue(np.shares_memory(keep, big))
        self.assertEqual(px.stride, 60 * 3 * 2)
        self.assertEqual((px.width, px.height, px.channels), (33, 25, 3))
        self.assertEqual(px.sample, tessera.Sample.U16)
        gray = np.zeros((40, 50), np.float32)
        px, keep = tessera._pixels_of(gray[3:20, 4:30])  # HxW: one channel, no copy either
        self.assertTrue(np.shares_memory(keep, gray))
        self.assertEqual((px.stride, px.channels), (50 * 4, 1))
        px, keep = tessera._pixels_of(big[:, ::2])  # samples not packed: a copy
        self.assertFalse(np.shares_memory(keep, big))
        self.assertEqual(px.stride, 30 * 3 * 2)

    def test_output_types(self):
        x = np.array([[[0, 64, 128, 255]]], np.uint8).repeat(3, 0).repeat(5, 1)
        with self.ref.graph_from_string(INVERT) as g, self.ref.job(g) as job:
            job.bind_input("in", x).run()
            np.testing.assert_array_equal(job.output("out", "uint8")[0, 0], [255, 191, 127, 255])
            self.assertEqual(job.output("out", np.uint16).dtype, np.uint16)

    def test_bad_arrays(self):
        with self.ref.graph_from_string(INVERT) as g, self.ref.job(g) as job:
            with self.assertRaises(TypeError):
                job.bind_input("in", np.zeros((4, 4), np.int32))
            with self.assertRaises(ValueError):
                job.bind_input("in", np.zeros((4, 4, 5), np.uint8))
            with self.assertRaises(ValueError):
                job.bind_input("in", np.zeros((4,), np.uint8))
            with self.assertRaises(tessera.Error) as cm:
                job.bind_input("nope", np.zeros((4, 4), np.uint8))
            self.assertEqual(cm.exception.status, tessera.Status.INVALID)

    def test_borrowed_input(self):
        x = random_pixels(np.random.default_rng(3), (20, 30, 3), np.float32)
        with self.ref.graph_from_string(INVERT) as g, self.ref.job(g) as job:
            job.bind_input("in", x, borrow=True).run()
            np.testing.assert_allclose(job.output("out"), inverted(x), atol=2e-6)

    def test_watch_keeps_a_preview(self):
        x = random_pixels(np.random.default_rng(4), (40, 100, 3), np.uint8)
        with self.ref.graph_from_string(INVERT) as g, self.ref.job(g) as job:
            job.bind_input("in", x).watch("in", 25).run()
            self.assertEqual(job.output("in").shape, (10, 25, 3))
            self.assertEqual(job.output("out").shape, (40, 100, 3))


class TestJobs(Base):
    def test_events_arrive_in_order_on_the_job_thread(self):
        events, threads = [], set()

        def on_event(ev):
            events.append(ev)
            threads.add(threading.get_ident())

        x = random_pixels(np.random.default_rng(5), (64, 64, 3), np.uint8)
        with self.ref.graph_from_string(INVERT) as g, self.ref.job(g, events=on_event) as job:
            job.bind_input("in", x).run()
            stats = job.stats
        names = [ev["event"] for ev in events]
        self.assertEqual(names[0], "chain-start", names)
        self.assertEqual(names[-1], "finish", names)
        self.assertEqual(events[-1]["status"], "ok")
        self.assertNotIn("execution-error", names)
        for node in ("in", "neg", "out"):
            mine = [i for i, ev in enumerate(events) if ev.get("nodeId") == node]
            starts = [i for i in mine if names[i] == "node-start"]
            finishes = [i for i in mine if names[i] == "node-finish"]
            self.assertEqual(len(starts), 1, (node, names))
            self.assertEqual(len(finishes), 1, (node, names))
            self.assertTrue(all(starts[0] <= i <= finishes[0] for i in mine), (node, names))
        order = [ev["nodeId"] for ev in events if ev["event"] == "node-start"]
        self.assertEqual(order, ["in", "neg", "out"])
        self.assertNotIn(threading.get_ident(), threads)  # callbacks ran on the job's thread
        self.assertEqual(stats["nodes"], 3)
        self.assertGreater(stats["seconds"], 0)

    def test_cancel_from_another_thread(self):
        """A slow job (reference engine, a large blur, 256x256 tiles) is cancelled by another
        Python thread and ends with CANCELLED within a second."""
        x = random_pixels(np.random.default_rng(6), (3000, 4000, 3), np.uint8)
        started = threading.Event()
        cancelled_at = []

        def on_event(ev):
            if ev["event"] == "node-start" and ev.get("nodeId") == "soft":
                started.set()

        def canceller():
            started.wait(30)
            time.sleep(0.3)
            running = job.is_running
            cancelled_at.append(time.monotonic())
            job.cancel()
            cancelled_at.append(running)

        with self.ref.graph_from_string(BLUR) as g, \
                self.ref.job(g, events=on_event, tile=(256, 256)) as job:
            job.bind_input("in", x)
            t = threading.Thread(target=canceller)
            t.start()
            job.start()
            self.assertTrue(job.wait(timeout=60))
            ended = time.monotonic()
            t.join()
            self.assertTrue(cancelled_at[1], "the job had ended before the cancel")
            self.assertEqual(job.status, tessera.Status.CANCELLED, job.message)
            self.assertLess(ended - cancelled_at[0], 1.0)
            self.assertIn("cancel", job.message)
            with self.assertRaises(tessera.Error) as cm:
                job.output("out")
            self.assertEqual(cm.exception.status, tessera.Status.CANCELLED)

    def test_graph_error_carries_the_position(self):
        bad = INVERT.replace("adjust.invert", "adjust.nope")
        with self.assertRaises(tessera.Error) as cm:
            self.ref.graph_from_string(bad, "bad.yaml")
        self.assertEqual(cm.exception.status, tessera.Status.GRAPH)
        self.assertRegex(cm.exception.message, r"bad\.yaml:4:\d+: error: .*adjust\.nope")

        with self.ref.graph_from_string(BLUR, "blur.yaml") as g:
            with self.assertRaises(tessera.Error) as cm:
                g.set("soft.sigma=-3")
            self.assertEqual(cm.exception.status, tessera.Status.GRAPH)
            with self.assertRaises(tessera.Error):
                g.set("soft.radius", 2)
            # Several at once, applied together; one bad value fails them all.
            with self.assertRaises(tessera.Error) as cm:
                g.set_many(["soft.sigma=4", "soft.sigma=-1"])
            self.assertIn("--set soft.sigma", cm.exception.message)
            g.set_many({"soft.sigma": 4})
            g.set_many([])

    def test_unbound_input_fails_the_job_with_position_and_event(self):
        events = []
        with self.ref.graph_from_string(INVERT, "unbound.yaml") as g, \
                self.ref.job(g, events=events.append) as job:
            with self.assertRaises(tessera.Error) as cm:
                job.run()
            self.assertEqual(cm.exception.status, tessera.Status.GRAPH)
            self.assertRegex(cm.exception.message, r"unbound\.yaml:3:\d+: error: node 'in'")
            self.assertEqual(job.status, tessera.Status.GRAPH)
        err = [ev for ev in events if ev["event"] == "execution-error"]
        self.assertEqual(len(err), 1, events)
        self.assertEqual(err[0]["source"]["nodeId"], "in")
        self.assertEqual(err[0]["source"]["line"], 3)
        self.assertEqual(events[-1]["event"], "finish")

    def test_callback_exception_cancels_and_is_raised_by_wait(self):
        def on_event(ev):
            if ev["event"] == "node-start":
                raise RuntimeError("from the callback")

        x = np.zeros((8, 8), np.uint8)
        with self.ref.graph_from_string(INVERT) as g, self.ref.job(g, events=on_event) as job:
            job.bind_input("in", x).start()
            with self.assertRaisesRegex(RuntimeError, "from the callback"):
                job.wait()
            self.assertEqual(job.status, tessera.Status.CANCELLED)

    def test_wait_before_start_and_timeout(self):
        with self.ref.graph_from_string(BLUR) as g, self.ref.job(g) as job:
            with self.assertRaises(tessera.Error) as cm:
                job.wait()
            self.assertEqual(cm.exception.status, tessera.Status.INVALID)
            self.assertEqual(job.status, tessera.Status.INVALID)
            job.bind_input("in", np.zeros((2000, 2000, 3), np.uint8)).start()
            self.assertFalse(job.wait(timeout=0.01))
            self.assertTrue(job.is_running)
            self.assertEqual(job.status, tessera.Status.BUSY)
            job.cancel()
            self.assertTrue(job.wait(timeout=30))
            self.assertFalse(job.is_running)


class TestCodecs(Base):
    def test_png_round_trip(self):
        rng = np.random.default_rng(7)
        for dtype, depth in ((np.uint8, 8), (np.uint16, 16)):
            for shape in ((31, 47), (31, 47, 2), (31, 47, 3), (31, 47, 4)):
                with self.subTest(dtype=np.dtype(dtype).name, shape=shape):
                    x = random_pixels(rng, shape, dtype)
                    data = self.ref.encode(x, "png", bit_depth=depth)
                    self.assertEqual(data[:8], b"\x89PNG\r\n\x1a\n")
                    with self.ref.decode(data) as img:
                        self.assertEqual(img.bit_depth, depth)
                        y = img.to_array(dtype)
                    np.testing.assert_array_equal(y, x.reshape(y.shape))

    def test_jpeg_round_trip_is_close(self):
        yy, xx = np.mgrid[0:64, 0:96]
        x = np.stack([xx * 255 // 95, yy * 255 // 63, (xx + yy) * 255 // 158], -1).astype(np.uint8)
        data = self.ref.encode(x, "jpeg", quality=95, subsampling=444)
        self.assertEqual(data[:2], b"\xff\xd8")
        with self.ref.decode(data) as img:
            y = img.to_array(np.uint8)
        self.assertLess(np.abs(y.astype(int) - x).mean(), 2.0)

    def test_decode_a_file_and_garbage(self):
        with open(os.path.join(ROOT, "graphs", "images", "small.png"), "rb") as f:
            data = f.read()
        with self.ref.decode(data) as a, self.ref.read_image(
                os.path.join(ROOT, "graphs", "images", "small.png")) as b:
            self.assertEqual(a.shape, b.shape)
            np.testing.assert_array_equal(a.to_array(), b.to_array())
        with self.assertRaises(tessera.Error) as cm:
            self.ref.decode(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
        self.assertEqual(cm.exception.status, tessera.Status.DECODE)


if __name__ == "__main__":
    unittest.main()
