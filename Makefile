# ctct-sync — GNU Make build.  See README.md.
#
#   make                 build/ctct-sync and build/ctct-sandbox
#   make check           unit tests, then integration tests against ctct-sandbox
#   make sanitize        make check with ASan+UBSan (objects in build-address-undefined/)
#   make valgrind-check  integration tests under valgrind
#   make clang-check     build with clang -Werror (build-clang/), run the unit tests
#   make lint            checksrc, cppcheck and the clang-format check
#                        (needs: sh scripts/install-deps.sh lint)
#   make install PREFIX=/usr/local DESTDIR=
#
# User variables (CC, CFLAGS, CPPFLAGS, LDFLAGS, PREFIX, DESTDIR) come after ours.
# Modules add rules in mk/*.mk fragments (fuzzing, benchmarks) so that this
# file changes rarely.

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
DESTDIR ?=
PKG_CONFIG ?= pkg-config
PKGS    := libuv libcurl jansson
comma   := ,
SANITIZE ?=
BUILD   ?= build$(if $(SANITIZE),-$(subst $(comma),-,$(SANITIZE)))

# `make demo` and `make check` install missing packages first (so a fresh
# Debian machine needs only these two commands); the other targets expect
# them to be there.
NEED_DEPS := $(filter-out deps clean distclean format format-check lint help,$(or $(MAKECMDGOALS),all))
ifneq ($(NEED_DEPS),)
ifneq ($(filter demo check sanitize valgrind-check ci,$(MAKECMDGOALS)),)
  DEPS_OK := $(shell sh scripts/install-deps.sh >&2 && echo ok)
  ifneq ($(DEPS_OK),ok)
    $(error scripts/install-deps.sh failed; see the message above)
  endif
endif
ifeq ($(shell $(PKG_CONFIG) --exists $(PKGS) && echo ok),)
  $(error missing pkg-config modules: $(PKGS); run scripts/install-deps.sh as root)
endif
endif

CSTD := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
WARN := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
        -Wmissing-prototypes -Wformat=2 -Wvla
ifeq ($(WERROR),1)
  WARN += -Werror
endif
OPT ?= -O2 -g
SAN_FLAGS :=
ifneq ($(SANITIZE),)
  OPT := -O1 -g -fno-omit-frame-pointer
  SAN_FLAGS := -fsanitize=$(SANITIZE) -fno-sanitize-recover=all
endif
DEP_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
DEP_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null) -lcsv -lm
ALL_CFLAGS  = $(CSTD) $(WARN) $(OPT) $(SAN_FLAGS) -Iinclude $(DEP_CFLAGS) $(CPPFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SAN_FLAGS) $(LDFLAGS)

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
ALL_CFLAGS += -DCTS_VERSION='"$(VERSION)"'

# Library: every src/*.c except main.c.  The client, the sandbox and every
# unit test link it, so code is written once.
LIB_SRC  := $(filter-out src/main.c,$(wildcard src/*.c))
LIB_OBJ  := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
SB_SRC   := $(wildcard src/sandbox/*.c)
SB_OBJ   := $(SB_SRC:src/%.c=$(BUILD)/obj/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c) $(wildcard tests/sandbox/test_*.c)
UNIT_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

PROG := $(BUILD)/ctct-sync
SANDBOX := $(BUILD)/ctct-sandbox
LIB := $(BUILD)/libcts.a

.PHONY: all check check-one unit integration sanitize tsan valgrind-check demo install uninstall \
        clean format format-check lint deps tests help clang-check
.DEFAULT_GOAL := all

all: $(PROG) $(SANDBOX)

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

$(PROG): $(BUILD)/obj/main.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(DEP_LIBS)

$(SANDBOX): $(SB_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(DEP_LIBS)

$(BUILD)/tests/%: tests/%.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Isrc -MMD -MP -o $@ $< $(LIB) $(ALL_LDFLAGS) $(DEP_LIBS) -lcmocka

tests: $(UNIT_BIN)

# check: the whole suite twice — the normal build, then the ASan+UBSan
# build (its own build-address-undefined/ tree) — then the unit tests and
# import scripts under ThreadSanitizer (build-thread/), then the import
# scripts with ctct-sync under valgrind, and one closing line "N passed,
# N failed" for CI runners.  check-one runs one build's suite.
check:
	@$(MAKE) --no-print-directory check-one
	@$(MAKE) --no-print-directory check-one SANITIZE=address,undefined
	@$(MAKE) --no-print-directory check-one SANITIZE=thread ONLY=$(TSAN_ONLY)
	@$(MAKE) --no-print-directory valgrind-check ONLY=$(VALGRIND_ONLY)
	@sh tests/total.sh build/check.counts build-address-undefined/check.counts \
	  build-thread/check.counts build/valgrind.counts

# JOBS: integration scripts run side by side (they wait on rates and
# latencies far more than they use the CPU); JOBS=1 runs them one by one.
JOBS ?= 2

check-one: all tests
	@BUILD=$(BUILD) JOBS=$(JOBS) COUNTS=$(BUILD)/check.counts sh tests/run-all.sh $(UNIT_BIN)

unit: tests
	@BUILD=$(BUILD) INTEGRATION=0 sh tests/run-all.sh $(UNIT_BIN)

integration: all
	@BUILD=$(BUILD) UNIT=0 sh tests/run-all.sh

sanitize:
	$(MAKE) check-one SANITIZE=address,undefined

# clang-check: the whole tree built with clang and -Werror in its own
# build-clang/ (clang warns about things gcc does not), then the unit tests.
# CI runs it after make check; the integration scripts are not repeated.
clang-check:
	@$(MAKE) --no-print-directory all unit CC=clang BUILD=build-clang WERROR=1

# tsan: the unit tests and the import scripts under ThreadSanitizer, for the
# pipeline's intake thread (make check runs it; ONLY= widens it).
TSAN_ONLY ?= test_import
tsan:
	$(MAKE) check-one SANITIZE=thread ONLY=$(TSAN_ONLY)

# valgrind-check: integration scripts with ctct-sync under valgrind (a
# valgrind error makes ctct-sync exit 99, which fails the case).  make check
# runs the import scripts this way (VALGRIND_ONLY); ONLY= runs them all.
VALGRIND_ONLY ?= test_import
valgrind-check: all
	@BUILD=$(BUILD) UNIT=0 JOBS=$(JOBS) COUNTS=$(BUILD)/valgrind.counts \
	  VALGRIND="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite" \
	  sh tests/run-all.sh

demo: all
	@sh scripts/demo.sh $(BUILD)

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 0755 $(PROG) $(SANDBOX) $(DESTDIR)$(BINDIR)/
	install -m 0644 doc/ctct-sync.1 $(DESTDIR)$(MANDIR)/man1/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/ctct-sync $(DESTDIR)$(BINDIR)/ctct-sandbox \
	      $(DESTDIR)$(MANDIR)/man1/ctct-sync.1

deps:
	sh scripts/install-deps.sh

# Every C file of the tree, formatted by .clang-format.  clang-format 14
# (Debian 12's) is preferred: other versions format some constructs
# differently, and the check must agree with `make format`.
FORMAT_SRC := $(wildcard src/*.c src/*.h src/sandbox/*.c src/sandbox/*.h include/*.h \
                tests/unit/*.c tests/unit/*.h tests/sandbox/*.c fuzz/*.c bench/*.c)
CLANG_FORMAT ?= $(or $(shell command -v clang-format-14 2>/dev/null),clang-format)

format:
	$(CLANG_FORMAT) -i $(FORMAT_SRC)

# format-check: fail (listing each spot) when a file differs from what
# `make format` would write.
format-check:
	@command -v $(CLANG_FORMAT) >/dev/null 2>&1 || \
	  { echo "format-check: $(CLANG_FORMAT) not found; run: sh scripts/install-deps.sh lint" >&2; exit 1; }
	$(CLANG_FORMAT) --dry-run --Werror $(FORMAT_SRC)

# lint: banned functions, cppcheck, formatting.  All three run even when
# one fails, so one CI run shows every problem; the target fails if any did.
lint:
	@command -v cppcheck >/dev/null 2>&1 || \
	  { echo "lint: cppcheck not found; run: sh scripts/install-deps.sh lint" >&2; exit 1; }
	@rc=0; \
	sh scripts/checksrc.sh || rc=1; \
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
	  --suppress=missingIncludeSystem -Iinclude src && echo "cppcheck: ok" || rc=1; \
	$(MAKE) --no-print-directory format-check && echo "format-check: ok" || rc=1; \
	exit $$rc

clean:
	rm -rf build build-*

help:
	@sed -n '1,/^$$/p' Makefile

-include mk/*.mk
-include $(LIB_OBJ:.o=.d) $(SB_OBJ:.o=.d) $(BUILD)/obj/main.d $(UNIT_BIN:=.d)
