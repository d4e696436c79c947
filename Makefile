# Coffer's build. The two commands a newcomer needs:
#   make demo   run Coffer's main job on the local stack of emulators
#   make test   everything CI runs: vet, unit and emulator tests, cross-builds
# Only Go and Node are assumed; everything else is installed here.

GO      ?= go
NPM     ?= npm
BIN     := bin
DEVDIR  := .dev
LDFLAGS := -s -w -X github.com/coffer-backup/coffer/shared/version.Version=$(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

NODE_STAMP := emulator-tests/node_modules/.coffer-installed

.PHONY: all build deps test test-windows vet unit cross package demo dev-up dev-down dev-status bench clean

all: build

## deps: install the emulators' npm packages (pinned by the lockfile) and Go
## modules, and Debian's Chromium for the portal's browser test when missing
## (without it that test skips, saying so), and on Linux fuse3 for the coffer
## mount tests (likewise)
deps: $(NODE_STAMP)
	$(GO) mod download
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		(apt-get update && apt-get install -y chromium) || \
		echo "deps: could not install chromium (not root?); the portal's browser test will be skipped"
	@[ "$$(uname -s)" != Linux ] || command -v fusermount3 >/dev/null || command -v fusermount >/dev/null || \
		apt-get install -y fuse3 || (apt-get update && apt-get install -y fuse3) || \
		echo "deps: could not install fuse3 (not root?); the coffer mount tests will be skipped"

$(NODE_STAMP): emulator-tests/package-lock.json emulator-tests/package.json
	cd emulator-tests && $(NPM) ci --no-audit --no-fund --loglevel=error
	touch $@

## build: the agent, the control plane and the dev-stack tool, in bin/
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/coffer ./agent/cmd/coffer
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/coffer-functions ./functions/cmd/coffer-functions
	$(GO) build -o $(BIN)/devstack ./emulator-tests/cmd/devstack

## test: vet, unit tests, emulator tests (each starts its own stack), cross-builds
test: deps vet
	$(GO) test -count=1 -timeout 12m ./...
	$(MAKE) --no-print-directory test-windows
	$(MAKE) --no-print-directory cross
	$(MAKE) --no-print-directory package

vet:
	$(GO) vet ./...

## test-windows: the Windows lane under wine (installs wine and mingw-w64
## when missing): the Windows test binaries of agent/... and shared/..., then
## the coffer CLI on a tree with Windows specifics (docs/windows.md)
test-windows:
	$(GO) run ./emulator-tests/cmd/winlane -dir .build/wine

## unit: the fast tests that need no emulator and no Node: under -short a
## test that needs one skips with one line (emulator-tests/ondemand), and
## TestMain starts nothing.
unit:
	$(GO) test -short -count=1 -timeout 5m ./agent/... ./functions/... ./shared/...

## package: stage the Functions app (host.json, one folder per function, the
## linux/amd64 binary) in dist/functions and zip it into dist/functions.zip,
## the file azure.yaml deploys. The zip is written here, not by azd, so the
## binary is 0755 in it even when packaged on Windows (functions/cmd/funczip);
## the last step reads the zip back and checks every file and mode.
PACKAGE_FILES := host.json api/function.json PurgeSoftDeleted/function.json EnforceRetention/function.json \
	MonitorBackups/function.json SendAlertDigest/function.json SendAlertEmail/function.json
package:
	rm -rf dist/functions dist/functions.zip
	mkdir -p dist/functions
	cp host.json dist/functions/
	cp -R functions/host/. dist/functions/
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/functions/coffer-functions ./functions/cmd/coffer-functions
	$(GO) run ./functions/cmd/funczip -dir dist/functions -out dist/functions.zip -exec coffer-functions
	$(GO) run ./functions/cmd/funczip -check dist/functions.zip -exec coffer-functions -require "$(strip $(PACKAGE_FILES))"
	@echo "package ok: dist/functions.zip is ready for azd deploy"

## cross: the agent must build for every OS it supports
cross:
	GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null ./agent/cmd/coffer
	GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null ./agent/cmd/coffer
	GOOS=linux GOARCH=arm64 $(GO) build -o /dev/null ./agent/cmd/coffer
	@echo "cross-builds ok: windows/amd64 darwin/arm64 linux/arm64"

## demo: Coffer's whole story on the local stack (vault, agent, backup, restore, alert, PIN, purge), then stop everything
demo: $(NODE_STAMP) build
	$(BIN)/devstack --dir $(DEVDIR) demo

## dev-up / dev-down / dev-status: keep the local stack running for manual work
dev-up: $(NODE_STAMP) build
	$(BIN)/devstack --dir $(DEVDIR) up

dev-down:
	@if [ -x $(BIN)/devstack ]; then $(BIN)/devstack --dir $(DEVDIR) down; \
	else $(GO) run ./emulator-tests/cmd/devstack --dir $(DEVDIR) down; fi

dev-status: build
	$(BIN)/devstack --dir $(DEVDIR) status

## bench: every Go micro-benchmark, once each
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
	@command -v restic >/dev/null && command -v borg >/dev/null || \
		(apt-get update && apt-get install -y restic borgbackup) || \
		echo "bench: could not install restic/borgbackup (not root?); the missing tools will be skipped"
	@$(MAKE) --no-print-directory $(NODE_STAMP) || echo "bench: Azurite's npm packages are not installed; Coffer against Azurite will be skipped"
	$(GO) run ./bench/cmd/cofferbench -scale $(or $(BENCH_SCALE),1.0) -dir $(or $(BENCH_DIR),.bench) -out $(or $(BENCH_DIR),.bench)/report.md $(BENCH_FLAGS)
	$(GO) run ./bench/cmd/alarmbench -scale $(or $(BENCH_SCALE),1.0) -dir $(or $(BENCH_DIR),.bench)/alarm -out $(or $(BENCH_DIR),.bench)/alarm.md

clean:
	rm -rf $(BIN) dist
