# strata: the two set-up commands are `make demo` and `make test` (both install what they need).
SHELL := /bin/bash
.PHONY: deps build demo test test-diff test-store check clean bench

deps:
	@bash scripts/install-deps.sh

build: deps
	@npx tsc -p tsconfig.json

demo: export STRATA_DEMO_ONLY = 1
demo: build
	@bash scripts/demo.sh

# Every test file under test/ (compiled to dist/test), through real mounts. Needs root and /dev/fuse.
test: build
	@npx tap $$(find dist/test -name '*.test.js' | sort)

test-diff: build
	@npx tap dist/test/diff/*.test.js

test-store: build
	@npx tap dist/test/store/*.test.js

# Kernel overlayfs vs fuse-overlayfs vs unionfs-fuse vs stratafs (issue 7); not part of `test`.
# Reports only, never fails on speed. Knobs (BENCH_REPS, BENCH_ONLY, BENCH_MILLION=1): bench/run.sh.
bench: build
	@bash bench/run.sh

check: build
	@npx tsc -p tsconfig.json --noEmit
	@bash scripts/check-mounts.sh

clean:
	rm -rf dist src/native/build .tap
