"""The vendored crates are published crates plus our patches, and nothing else.

    python3 vendor/patches/vendor.py check   # vendor/<crate> == published + patches (make lint)
    python3 vendor/patches/vendor.py write   # rebuild vendor/<crate> from published + patches
    python3 vendor/patches/vendor.py unpack  # the published files git does not keep (make)

For each `vendor/patches/<crate>/UPSTREAM` (crate, version, the SHA-256 crates.io lists for the
package, and the published files not vendored), the package is taken from cargo's download cache
or from crates.io, checked against that SHA-256, unpacked without the excluded files, and the
`*.patch` files beside UPSTREAM are applied in order (`git apply`). An upgrade: set the new
version and checksum, run `write`, fix the patches that no longer apply, run `check`.

The published files UPSTREAM names as `unpacked` (binaries, such as Extism's kernel) are not kept
in git: `unpack` writes them into vendor/<crate> from the checked package, where missing or
different, and `make` runs it before anything builds. No patch may touch them. `unpacked = *`
names every published file that is not excluded and that no patch touches: git then keeps only
the patched files of a large crate (wasmtime), and `.gitignore` the rest.
"""

import filecmp
import glob
import hashlib
import io
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
PATCHES = ROOT / "vendor" / "patches"


def upstream(crate_dir):
    fields = {}
    for line in (crate_dir / "UPSTREAM").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            fields[key.strip()] = value.strip()
    fields["exclude"] = fields.get("exclude", "").split()
    fields["unpacked"] = fields.get("unpacked", "").split()
    return fields


# Packages downloaded from crates.io are kept here: cargo never fetches a crate that
# `[patch.crates-io]` replaces, so its own cache does not have them.
DOWNLOADED = ROOT / "target" / "vendored-crates"


def package(crate, version, sha256):
    name = f"{crate}-{version}.crate"
    cached = glob.glob(os.path.expanduser(f"~/.cargo/registry/cache/*/{name}"))
    cached += [str(DOWNLOADED / name)] if (DOWNLOADED / name).is_file() else []
    for path in cached:
        data = pathlib.Path(path).read_bytes()
        if hashlib.sha256(data).hexdigest() == sha256:
            return data
    url = f"https://static.crates.io/crates/{crate}/{name}"
    try:
        data = urllib.request.urlopen(url, timeout=60).read()
    except OSError as error:
        sys.exit(f"cannot download {url}: {error}")
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        sys.exit(f"{name} has SHA-256 {actual}, not the expected {sha256}")
    DOWNLOADED.mkdir(parents=True, exist_ok=True)
    (DOWNLOADED / name).write_bytes(data)
    return data


def build(crate_dir, into):
    fields = upstream(crate_dir)
    crate, version = fields["crate"], fields["version"]
    data = package(crate, version, fields["sha256"])
    prefix = f"{crate}-{version}/"
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            if not member.isfile() or not member.name.startswith(prefix):
                continue
            relative = member.name[len(prefix):]
            if any(relative == e or relative.startswith(e.rstrip("/") + "/") for e in fields["exclude"]):
                continue
            target = into / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.extractfile(member).read())
    for patch in sorted(crate_dir.glob("*.patch")):
        result = subprocess.run(
            ["git", "apply", "--whitespace=nowarn", str(patch)],
            cwd=into, capture_output=True, text=True,
        )
        if result.returncode != 0:
            sys.exit(f"{patch.relative_to(ROOT)} does not apply to {crate} {version}:\n{result.stderr}")
    return crate


def touched(crate_dir):
    """The files the crate's patches change, as paths inside the crate."""
    paths = set()
    for patch in crate_dir.glob("*.patch"):
        for line in patch.read_text().splitlines():
            if line.startswith(("--- a/", "+++ b/")):
                paths.add(line[6:])
    return paths


def unpacked(crate_dir, fields, archive):
    """The published files of the crate that git does not keep."""
    if fields["unpacked"] != ["*"]:
        return fields["unpacked"]
    prefix = f"{fields['crate']}-{fields['version']}/"
    patched = touched(crate_dir)
    wanted = []
    for member in archive.getmembers():
        if not member.isfile() or not member.name.startswith(prefix):
            continue
        relative = member.name[len(prefix):]
        if any(relative == e or relative.startswith(e.rstrip("/") + "/") for e in fields["exclude"]):
            continue
        if relative not in patched:
            wanted.append(relative)
    return wanted


def unpack(crate_dir):
    """Writes the crate's `unpacked` files into vendor/<crate> where missing or different."""
    fields = upstream(crate_dir)
    crate, version = fields["crate"], fields["version"]
    if not fields["unpacked"]:
        return
    prefix = f"{crate}-{version}/"
    data = package(crate, version, fields["sha256"])
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        wanted = unpacked(crate_dir, fields, archive)
        written = 0
        for relative in wanted:
            try:
                content = archive.extractfile(prefix + relative).read()
            except KeyError:
                sys.exit(f"{crate} {version} has no {relative} (vendor/patches/{crate_dir.name}/UPSTREAM)")
            target = ROOT / "vendor" / crate / relative
            if target.is_file() and target.read_bytes() == content:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            written += 1
        if written:
            print(f"vendor/{crate}: {written} file(s) unpacked from the published crate")


def files(tree):
    return sorted(str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file())


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "check"
    if mode not in ("check", "write", "unpack"):
        sys.exit(__doc__)
    failed = False
    for crate_dir in sorted(p for p in PATCHES.iterdir() if (p / "UPSTREAM").is_file()):
        if mode == "unpack":
            unpack(crate_dir)
            continue
        with tempfile.TemporaryDirectory() as temporary:
            expected = pathlib.Path(temporary)
            crate = build(crate_dir, expected)
            vendored = ROOT / "vendor" / crate
            if mode == "write":
                shutil.rmtree(vendored, ignore_errors=True)
                shutil.copytree(expected, vendored)
                print(f"vendor/{crate}: written from the published crate and {crate_dir.name}'s patches")
                continue
            want, have = files(expected), files(vendored) if vendored.is_dir() else []
            differences = [f"only in vendor/{crate}: {f}" for f in sorted(set(have) - set(want))]
            fields = upstream(crate_dir)
            data = package(fields["crate"], fields["version"], fields["sha256"])
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
                not_kept = set(unpacked(crate_dir, fields, archive))
            differences += [
                f"missing from vendor/{crate}: {f}" + (" (run `make vendored`)" if f in not_kept else "")
                for f in sorted(set(want) - set(have))
            ]
            differences += [
                f"vendor/{crate}/{f} differs from the published crate plus patches"
                for f in sorted(set(want) & set(have))
                if not filecmp.cmp(expected / f, vendored / f, shallow=False)
            ]
            if differences:
                failed = True
                print("\n".join(differences), file=sys.stderr)
            else:
                print(f"vendor/{crate}: the published crate plus {len(list(crate_dir.glob('*.patch')))} patches")
    if failed:
        sys.exit("the vendored tree is not the published crate plus its patches: "
                 "put every change in a patch (vendor/patches/), then run `vendor.py write`")


if __name__ == "__main__":
    main()
