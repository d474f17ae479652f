"""Fails unless the wasmtime that Cargo.lock resolves is a release line with security support.

The rule (README: Security): wasmtime releases a new major version every month and supports
each for a short while; every 12th (24, 36, 48, ...) is a long-term-support line, released on
August 20th of its year and supported for 24 months. We run only LTS lines, inside their 24
months, with every wasmtime-family crate (wasmtime-*, wiggle, wasi-common) of the same release.
Moving to the next LTS line (or taking a security release of this one): raise `wasmtime` in
Cargo.toml, the version in the vendored Extism's wasmtime patch (vendor/patches/extism/) and the
version and SHA-256 in vendor/patches/wasmtime/UPSTREAM (see its README), run
`vendor/patches/vendor.py write`, fix what no longer builds, and run `make test` and `make bench`.

It also fails unless the wasmtime Cargo.lock resolves is the vendored one (a path, no registry
source) of the version vendor/patches/wasmtime/UPSTREAM names: should Cargo.toml ask for another
version, cargo only warns that the `[patch.crates-io]` entry is unused and builds the published
crate, without the patch the instance pool's reset relies on.
"""

import datetime
import pathlib
import sys
import tomllib

import vendor

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
FIRST_LTS = 24
FIRST_LTS_RELEASE = datetime.date(2024, 8, 20)
SUPPORT_MONTHS = 24


def family(name):
    return name.startswith("wasmtime") or name.startswith("wiggle") or name == "wasi-common"


def main():
    lock = tomllib.loads((ROOT / "Cargo.lock").read_text())
    packages = [(p["name"], p["version"]) for p in lock["package"] if family(p["name"])]
    versions = {version for name, version in packages if name == "wasmtime"}
    if len(versions) != 1:
        sys.exit(f"Cargo.lock resolves wasmtime to {sorted(versions) or 'nothing'}: expected one version")
    version = versions.pop()
    upstream = vendor.upstream(vendor.PATCHES / "wasmtime")
    resolved = [p for p in lock["package"] if p["name"] == "wasmtime"]
    if any("source" in p for p in resolved) or version != upstream.get("version"):
        sys.exit(f"Cargo.lock resolves wasmtime {version} from crates.io, not the vendored "
                 f"wasmtime {upstream.get('version')} (vendor/wasmtime, with its patch): make "
                 "Cargo.toml's wasmtime and vendor/patches/wasmtime/UPSTREAM agree (see this "
                 "script's doc)")
    major = int(version.split(".")[0])
    mixed = [f"{name} {v}" for name, v in packages if v != version]
    if mixed:
        sys.exit(f"wasmtime {version} beside other releases of its family: {', '.join(mixed)}")
    if major < FIRST_LTS or (major - FIRST_LTS) % 12:
        sys.exit(f"wasmtime {version} is not a long-term-support line (24, 36, 48, ...): "
                 "its security support ends within months")
    released = FIRST_LTS_RELEASE.replace(year=FIRST_LTS_RELEASE.year + (major - FIRST_LTS) // 12)
    ends = released.replace(year=released.year + SUPPORT_MONTHS // 12)
    today = datetime.date.today()
    if today >= ends:
        sys.exit(f"wasmtime {major} (LTS, released {released}) lost security support on {ends}: "
                 f"move to wasmtime {major + 12} (see this script's doc)")
    left = (ends - today).days
    print(f"wasmtime {version}: LTS, supported until {ends} ({left} days)"
          + ("; plan the move to the next LTS line" if left < 120 else ""))


if __name__ == "__main__":
    main()
