# Tessera: the one build entry. Generated files go under $(BUILD).
#   make            library, CLI, pkg-config files, examples
#   make test       install missing packages, build, run every test (then `make test SAN=1`)
#   make demo       install missing packages, build, run graphs/upscale.yaml
#   make bench      speed table against libvips and OpenCV (tools/bench-opencv.py, in-process,
#                   uint8 and float32; skipped without python cv2: pip install
#                   opencv-python-headless), the memory budget through a chain, the tile target
#                   against fixed budgets, cancel latency, a batch of 100 images against shell
#                   loops of tessera and vips, then the models against ncnn's CPU
#                   (MODEL_BENCH_ARGS='--threads N --only NAME'; skipped without python ncnn).
#                   Columns: wall s (whole command), process s (the operation alone), RSS MiB
#                   (peak resident, tools run as a process), GB/s (float32 input + output bytes
#                   over process s, beside the copy bandwidth of build/bench-copy in the
#                   header). REPS=N sets the best-of count (default 3).
#   make install PREFIX=/usr/local
#   make fuzz [FUZZ_TIME=60] [FUZZERS='graph image model']
#                   build the libFuzzer harnesses of tests/fuzz/ with clang and ASan+UBSan (the
#                   library too, in build-fuzz/) and run each for FUZZ_TIME seconds from its
#                   corpus, tests/fuzz/corpus/NAME (read only: new inputs go to
#                   build-fuzz/fuzz/new/NAME); a crash is saved in build-fuzz/fuzz/crashes/NAME
#                   and fails the target. `make test` replays every corpus (build*/tests/fuzz/).

PREFIX ?= /usr/local
VERSION := 0.1.0
SAN ?= 0
ifeq ($(SAN),1)
BUILD ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT ?= -O1 -g
else ifeq ($(SAN),fuzz)
# The library for the libFuzzer harnesses (make fuzz): coverage without libFuzzer's main.
BUILD ?= build-fuzz
SANFLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined
OPT ?= -O1 -g
else ifeq ($(SAN),thread)
BUILD ?= build-tsan
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
OPT ?= -O1 -g
else
BUILD ?= build
SANFLAGS :=
OPT ?= -O2 -g
endif

CC ?= cc
WERROR ?= -Werror
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE $(OPT) -fPIC -Wall -Wextra $(WERROR) -Wno-unused-parameter \
             -Iengine -I$(BUILD)/gen $(SANFLAGS) $(CFLAGS)
LDLIBS_ALL = -lOpenCL -lpng -ljpeg -lwebp -lwebpmux -lwebpdemux -ltiff -llcms2 -lyaml -lm -lpthread
TEST_LDLIBS = -lcmocka

ENGINE_SRC := $(sort $(wildcard engine/*.c))
NODE_SRC := $(sort $(wildcard nodes/*.c))
KERNELS := $(sort $(wildcard kernels/*.cl kernels/*.clh))
LIB_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/obj/%.o) $(NODE_SRC:%.c=$(BUILD)/obj/%.o) \
           $(BUILD)/obj/gen/kernels.o
TEST_SRC := $(sort $(wildcard tests/unit/test_*.c tests/nodes/test_*.c tests/graphs/test_*.c))
# Fuzz harnesses (tests/fuzz/fuzz_NAME.c): in the test run as corpus replays (replay_main.c).
FUZZERS ?= graph image model
FUZZ_TIME ?= 60
FUZZ_REPLAY := $(FUZZERS:%=$(BUILD)/tests/fuzz/replay_%)
TEST_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC)) $(FUZZ_REPLAY)
TEST_COMMON := $(sort $(wildcard tests/common/*.c))
TEST_COMMON_OBJ := $(TEST_COMMON:%.c=$(BUILD)/obj/%.o)
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(sort $(wildcard examples/*.c)))

.SECONDARY:
.PHONY: all deps test test-tsan check demo bench install clean format format-check tests-build \
        fuzz fuzz-build
all: $(BUILD)/libtessera.a $(BUILD)/libtessera.so $(BUILD)/tessera $(BUILD)/tessera.pc \
     $(BUILD)/tessera-uninstalled.pc $(EXAMPLES)

deps:
	@bash tools/install-deps.sh

$(BUILD)/embed-kernels: tools/embed-kernels.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -O2 -o $@ $<

$(BUILD)/gen/kernels.c: $(BUILD)/embed-kernels $(KERNELS)
	@mkdir -p $(@D)
	$(BUILD)/embed-kernels $@ $(KERNELS)

$(BUILD)/obj/gen/kernels.o: $(BUILD)/gen/kernels.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/obj/%.o: %.c engine/tessera.h engine/internal.h nodes/nodes.def
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c -o $@ $<

$(BUILD)/libtessera.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The real file carries the soname; libtessera.so is the link-time name, as once installed.
$(BUILD)/libtessera.so.0: $(LIB_OBJ)
	$(CC) -shared $(SANFLAGS) -Wl,-soname,libtessera.so.0 -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/libtessera.so: $(BUILD)/libtessera.so.0
	ln -sf libtessera.so.0 $@

$(BUILD)/tessera: $(BUILD)/obj/tools/tessera.o $(BUILD)/libtessera.a
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/tessera.pc: tools/tessera.pc.in Makefile
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

# For programs built against this tree before `make install`:
#   PKG_CONFIG_PATH=build pkg-config --cflags --libs tessera-uninstalled
# The paths are this checkout's, written at build time (none is committed).
$(BUILD)/tessera-uninstalled.pc: tools/tessera-uninstalled.pc.in Makefile
	@mkdir -p $(@D)
	sed -e 's|@BUILDDIR@|$(abspath $(BUILD))|g' -e 's|@SRCDIR@|$(CURDIR)|g' \
	    -e 's|@VERSION@|$(VERSION)|g' $< > $@

# Examples link the shared library as an embedding program would; $ORIGIN/.. finds it in
# $(BUILD) without LD_LIBRARY_PATH. Plain C11 + POSIX: no -D_GNU_SOURCE, no internal headers.
$(BUILD)/examples/%: examples/%.c engine/tessera.h $(BUILD)/libtessera.so
	@mkdir -p $(@D)
	$(CC) -std=c11 $(OPT) -Wall -Wextra $(WERROR) -Iengine $(SANFLAGS) $(CFLAGS) -o $@ $< \
	    -L$(BUILD) -ltessera -Wl,-rpath,'$$ORIGIN/..'

$(BUILD)/tests/%: tests/%.c $(TEST_COMMON_OBJ) $(BUILD)/libtessera.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -Itests/common -o $@ $< $(TEST_COMMON_OBJ) $(BUILD)/libtessera.a \
	    $(TEST_LDLIBS) $(LDLIBS_ALL)

# Replays every input of the harness's corpus (or the files and folders given) once.
$(BUILD)/tests/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay_main.c $(BUILD)/libtessera.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -DFUZZ_CORPUS='"tests/fuzz/corpus/$*"' -o $@ $< tests/fuzz/replay_main.c \
	    $(BUILD)/libtessera.a $(LDLIBS_ALL)

tests-build: all $(TEST_BIN)

# libFuzzer builds (make SAN=fuzz CC=clang, from `make fuzz`).
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(BUILD)/libtessera.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -fsanitize=fuzzer -o $@ $< $(BUILD)/libtessera.a $(LDLIBS_ALL)

fuzz-build: $(FUZZERS:%=$(BUILD)/fuzz/fuzz_%)

# Each harness for FUZZ_TIME seconds; all run, then the target fails if any found a crash.
FUZZ_OPTS ?= -timeout=20 -rss_limit_mb=2048 -max_len=65536
fuzz:
	$(MAKE) SAN=fuzz CC=clang BUILD=build-fuzz fuzz-build
	@set -u; failed=""; for f in $(FUZZERS); do \
	    mkdir -p build-fuzz/fuzz/new/$$f build-fuzz/fuzz/crashes/$$f; \
	    dict=; [ -f tests/fuzz/$$f.dict ] && dict=-dict=tests/fuzz/$$f.dict; \
	    echo "== fuzz_$$f for $(FUZZ_TIME) s"; \
	    ASAN_OPTIONS="detect_leaks=1:$${ASAN_OPTIONS:-}" \
	    LSAN_OPTIONS="suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0" \
	    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" TSR_DEVICE=ref \
	    build-fuzz/fuzz/fuzz_$$f $(FUZZ_OPTS) $$dict -max_total_time=$(FUZZ_TIME) \
	        -artifact_prefix=build-fuzz/fuzz/crashes/$$f/ -print_final_stats=1 \
	        build-fuzz/fuzz/new/$$f tests/fuzz/corpus/$$f \
	        >build-fuzz/fuzz/$$f.log 2>&1 || failed="$$failed $$f"; \
	    grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)|ERROR|SUMMARY' \
	        build-fuzz/fuzz/$$f.log | head -n 8; \
	done; \
	if [ -n "$$failed" ]; then \
	    echo "fuzz: crashes in:$$failed (inputs in build-fuzz/fuzz/crashes/, logs in build-fuzz/fuzz/*.log)"; \
	    exit 1; \
	fi; echo "fuzz: no crash in $(FUZZ_TIME) s each ($(FUZZERS))"

# The README's test command: packages, build, every test; then the same under ASan+UBSan.
test: deps
	$(MAKE) tests-build
	bash tests/run.sh $(BUILD)
	$(MAKE) SAN=1 tests-build
	bash tests/run.sh build-san

# The multi-threaded tests under ThreadSanitizer (PoCL's own threads are not instrumented; what
# they share with ours is reached through OpenCL calls, whose locks TSan sees).
TSAN_TESTS := tests/unit/test_jobs tests/unit/test_pool tests/unit/test_image_ctl
test-tsan: deps
	$(MAKE) SAN=thread $(TSAN_TESTS:tests/%=build-tsan/tests/%)
	@set -e; for t in $(TSAN_TESTS:tests/%=build-tsan/tests/%); do \
	    echo "== $$t (ThreadSanitizer)"; \
	    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp" \
	        $$t; \
	done

check: tests-build
	bash tests/run.sh $(BUILD)

demo: deps all
	@mkdir -p out
	$(BUILD)/tessera run graphs/upscale.yaml
	@echo "demo: wrote out/upscale.png (graphs/images/small.png enlarged x2 by waifu2x upconv_7)"

$(BUILD)/bench-cancel: $(BUILD)/obj/tools/bench-cancel.o $(BUILD)/libtessera.a
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/bench-copy: $(BUILD)/obj/tools/bench-copy.o
	$(CC) $(SANFLAGS) -o $@ $^ -lOpenCL

bench: deps all $(BUILD)/bench-cancel $(BUILD)/bench-copy
	bash tools/bench.sh $(BUILD)/tessera
	$(BUILD)/bench-cancel 50
	bash tools/bench-batch.sh $(BUILD)/tessera 100
	bash tools/bench-models.sh $(MODEL_BENCH_ARGS) $(BUILD)/tessera

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin \
	    $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 $(BUILD)/libtessera.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libtessera.so.0 $(DESTDIR)$(PREFIX)/lib/libtessera.so.0
	ln -sf libtessera.so.0 $(DESTDIR)$(PREFIX)/lib/libtessera.so
	install -m 644 engine/tessera.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(BUILD)/tessera $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' tools/tessera.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/tessera.pc

format:
	clang-format -i engine/*.[ch] nodes/*.c tools/*.c tests/*/*.c examples/*.c

format-check:
	clang-format --dry-run --Werror engine/*.[ch] nodes/*.c tools/*.c tests/*/*.c examples/*.c

clean:
	rm -rf build build-san build-tsan build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
