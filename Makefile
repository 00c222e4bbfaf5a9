# ateom-microvm build, test and run entry points. Everything runs through the repo's own pinned
# Deno (npm package `deno`, exact version in package.json) installed by `make setup`.

ARCH := $(shell uname -m)
DENO_PLATFORM := linux-$(if $(filter aarch64 arm64,$(ARCH)),arm64,x64)-glibc
DENO := node_modules/@deno/$(DENO_PLATFORM)/deno
# The pinned Deno's version, as a shell expansion for recipes (evaluated only where used).
DENO_VERSION = $$($(DENO) --version | head -1 | cut -d' ' -f2)
BUF := node_modules/.bin/buf
# The program needs FFI (fd passing, SEEK_DATA, tun, setns), which already grants everything a
# process can do, and /proc (process start times, RSS, per-netns sysctls), which Deno only opens
# with --allow-all. So it runs with --allow-all; the launcher uses the same flags.
PERMS := --allow-all
RUN_BASE ?= $(CURDIR)/.run
RUN_POD_UID ?= local-pod
TEST_FLAGS ?=

.PHONY: setup gen lock check check-gen test bench run binary clean

setup: node_modules/.setup-done

node_modules/.setup-done: package.json package-lock.json
	npm ci --prefer-offline --no-audit --no-fund --loglevel=error
	@test -x $(DENO) || { echo "setup: pinned deno binary missing at $(DENO)"; exit 1; }
	@touch $@

# After changing package.json: refresh package-lock.json and Deno's deno.lock (frozen in deno.json).
lock:
	npm install --no-audit --no-fund --loglevel=error
	$(DENO) install --frozen=false
	@touch node_modules/.setup-done

gen: setup
	$(BUF) generate

# Fails when the committed generated code differs from what `make gen` would write.
check-gen: setup
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(BUF) generate -o "$$tmp" && \
	diff -r "$$tmp/proto/gen" proto/gen >/dev/null || \
	{ echo "check-gen: proto/gen is stale: run 'make gen' and commit the result"; exit 1; }

check: setup check-gen
	$(DENO) fmt --check
	$(DENO) lint
	$(DENO) check main.ts lib tests

test: setup check
	$(DENO) test $(PERMS) $(TEST_FLAGS)

bench: setup
	$(DENO) run $(PERMS) tests/bench/main.ts

run: setup
	bin/ateom-microvm serve --pod-uid $(RUN_POD_UID) --base-path $(RUN_BASE)

# deno compile needs the denort runtime of the pinned Deno version; set DENORT_BIN to a local
# copy where it cannot be downloaded (see docs/quickstart.md). The result is smoke-tested and
# removed when it does not run (e.g. DENORT_BIN pointing at a full deno, not denort), because
# bin/ateom-microvm prefers dist/ateom-microvm when present.
binary: setup
	mkdir -p dist
	@$(DENO) compile $(PERMS) --no-check --include proto/gen --output dist/ateom-microvm.new main.ts \
	  || { rm -f dist/ateom-microvm.new; echo "binary: deno compile failed (above); without access" \
	    "to dl.deno.land it needs DENORT_BIN=/path/to/denort of deno" \
	    "$(DENO_VERSION) (see docs/quickstart.md)"; exit 1; }
	@dist/ateom-microvm.new version >/dev/null 2>&1 || { rm -f dist/ateom-microvm.new; \
	  echo "binary: the compiled dist/ateom-microvm does not run: DENORT_BIN must be the denort" \
	    "runtime of deno $(DENO_VERSION), not a full deno"; exit 1; }
	mv dist/ateom-microvm.new dist/ateom-microvm

clean:
	rm -rf dist .run
