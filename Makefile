# wasm-lambda developer commands. `make run` and `make test` work on a fresh machine: they
# install what they need (wasm target, a project-local virtualenv with cargo-lambda and an
# S3-compatible server) and start what they need.

.PHONY: all build vendored functions plugins run test template sam-build bench lint fmt tools clean

VENV        := .venv
TOOLS_STAMP := $(VENV)/.tools-installed
WASM_TARGET := wasm32-unknown-unknown
WASI_TARGET := wasm32-wasip1
PORT        ?= 9000
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

all: build functions

build: vendored
	cargo build --bins

# What git does not keep of the vendored crates (Extism's kernel, a binary; wasmtime's files no
# patch touches) is unpacked from the published crates (cargo's download cache, else crates.io),
# checked against the SHA-256 each vendor/patches/<crate>/UPSTREAM names, before anything builds.
# Files already equal to the published ones are left alone, so nothing rebuilds.
vendored:
	@python3 vendor/patches/vendor.py unpack

# Python tools, pinned to a major version, in a virtualenv inside the project (reinstalled when
# this list changes): the Lambda Runtime API emulator, an S3-compatible server, the SAM CLI.
$(TOOLS_STAMP): Makefile
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet 'cargo-lambda>=1.8,<2' 'moto[server]>=5,<6' 'aws-sam-cli>=1.100,<2'
	touch $@

tools: $(TOOLS_STAMP)
	rustup target add $(WASM_TARGET) $(WASI_TARGET)

# Every function crate in functions/*/ builds to wasm32-unknown-unknown.
functions: tools
	@for dir in functions/*/; do \
		if [ -f $$dir/Cargo.toml ]; then \
			echo "building $$dir"; \
			(cd $$dir && cargo build --quiet --release --target $(WASM_TARGET)) || exit 1; \
		fi; \
	done

# Test plugins (tests/plugins/*/): the sandbox tests' attacks, built for WASI.
plugins: tools
	@for dir in tests/plugins/*/; do \
		echo "building $$dir"; \
		(cd $$dir && cargo build --quiet --release --target $(WASI_TARGET)) || exit 1; \
	done

# The bootstrap under cargo-lambda's Runtime API emulator, on the local function store, while
# `wasm-lambda build --watch` rebuilds each function whose sources change: the next request runs
# the new module, nothing restarts (.cargolambdaignore keeps functions/ out of cargo-lambda's watch).
# The functions' capabilities (S3, key-value, queues, topics, secrets) act on a local
# AWS-compatible server on AWS_PORT, where `wasm-lambda provision` creates what their grants name;
# `make run AWS=real` uses the AWS account and region of your environment instead.
#   curl http://localhost:9000/lambda-url/bootstrap/hello/world
AWS         ?= local
AWS_PORT    ?= 4566
ifeq ($(AWS),local)
RUN_AWS_ENV := AWS_ENDPOINT_URL=http://127.0.0.1:$(AWS_PORT) AWS_ACCESS_KEY_ID=local \
               AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
else
RUN_AWS_ENV := $(foreach v,AWS_PROFILE AWS_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY \
               AWS_SESSION_TOKEN KV_TABLE SOURCE_NAMES,$(if $($(v)),$(v)=$($(v))))
endif
run: vendored functions
	cargo build --bin wasm-lambda
	@trap 'kill 0' INT TERM EXIT; \
	if [ "$(AWS)" = local ]; then \
		moto_server -H 127.0.0.1 -p $(AWS_PORT) > $(VENV)/aws-server.log 2>&1 & \
		for i in $$(seq 1 300); do \
			python3 -c "import socket, sys; sys.exit(socket.socket().connect_ex(('127.0.0.1', $(AWS_PORT))))" \
				&& break; sleep 0.2; \
		done; \
		env $(RUN_AWS_ENV) target/debug/wasm-lambda provision functions || exit 1; \
	fi; \
	target/debug/wasm-lambda build --watch functions & \
	cargo lambda watch --bin bootstrap -A 127.0.0.1 -P $(PORT) \
		--env-var FUNCTIONS_DIR=$(CURDIR)/functions \
		$(foreach pair,$(RUN_AWS_ENV),--env-var $(pair))

# The SAM template: lint it offline.
template: tools
	AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0 sam validate --lint -t template.yaml

# What `sam build` makes for Lambda: the arm64 bootstrap (release build, cross-compiled with zig).
sam-build: vendored tools
	AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0 sam build --beta-features
	@python3 -c "import sys; h = open(sys.argv[1], 'rb').read(20); \
		ok = h[:4] == b'\x7fELF' and int.from_bytes(h[18:20], 'little') == 183; \
		print('arm64 bootstrap:' if ok else 'not an arm64 executable:', sys.argv[1]); \
		sys.exit(0 if ok else 1)" \
		.aws-sam/build/Bootstrap/bootstrap

test: vendored functions plugins template
	cargo test --all-targets
	cargo test --doc

# Side-by-side measurements against a native Rust Lambda, cold paths, init and memory, in one run
# of release builds; writes BENCHMARKS.md.
bench: vendored functions plugins
	cargo build --release --example native_hello
	cargo bench --bench harness

# Besides format and clippy: the vendored Extism is the published crate plus vendor/patches/,
# and the resolved wasmtime is a release line with security support (README: Security).
lint: vendored
	python3 vendor/patches/vendor.py check
	python3 vendor/patches/wasmtime_support.py
	cargo fmt --check
	@for dir in functions/*/ tests/plugins/*/ sdk/; do (cd $$dir && cargo fmt --check) || exit 1; done
	cd sdk && cargo clippy --target $(WASM_TARGET) -- -D warnings
	cargo clippy --all-targets -- -D warnings

fmt:
	cargo fmt
	@for dir in functions/*/ tests/plugins/*/; do (cd $$dir && cargo fmt); done

clean:
	cargo clean
	rm -rf $(VENV) functions/*/target tests/plugins/*/target
