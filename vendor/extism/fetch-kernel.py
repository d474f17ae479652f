"""Puts Extism's kernel (`src/extism-runtime.wasm`, a build output of the Extism project that its
crate embeds) into this vendored copy: from the published extism 1.30.0 crate, checked against
the checksum crates.io lists for it. `make` runs it before any build."""

import hashlib
import io
import pathlib
import sys
import tarfile
import urllib.request

CRATE = "https://static.crates.io/crates/extism/extism-1.30.0.crate"
CRATE_SHA256 = "4b66cd9ac5c64b49c9bac69db3d1b10d8f9386e7caab73489c2f197ba43d5e05"
MEMBER = "extism-1.30.0/src/extism-runtime.wasm"

target = pathlib.Path(__file__).parent / "src" / "extism-runtime.wasm"
try:
    crate = urllib.request.urlopen(CRATE, timeout=60).read()
except OSError as error:
    sys.exit(f"cannot download {CRATE}: {error}")
actual = hashlib.sha256(crate).hexdigest()
if actual != CRATE_SHA256:
    sys.exit(f"{CRATE} has SHA-256 {actual}, not the expected {CRATE_SHA256}")
with tarfile.open(fileobj=io.BytesIO(crate), mode="r:gz") as archive:
    kernel = archive.extractfile(MEMBER).read()
target.write_bytes(kernel)
print(f"Extism kernel: {target} ({len(kernel)} bytes)")
