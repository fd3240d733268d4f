"""Every container image the project names is pinned to an exact version.

Reads the image references of deploy/Dockerfile (FROM), deploy/compose.yaml and deploy/k8s/
(`image:`). A reference passes when its tag names an exact release: a version with three
numbers (`2.10.22-alpine`, `v2.54.1`) or a dated build (`bookworm-20260824-slim`). It fails on
no tag, `latest`, or a tag that only names a major or minor line (`1-bookworm`, `20-slim`,
`7.0`), all of which move under us. A digest (`@sha256:` and 64 hex digits) is checked for
form when present; references without one are listed, not refused, since a digest can only be
added where it was looked up.

Our own image (`convertpulse:`) must carry the workspace version of Cargo.toml.

Usage: image_refs.py [repository root]; exits 1 on a problem.
"""

import glob
import os
import re
import sys

EXACT = re.compile(r"(^|[^0-9.])v?\d+\.\d+\.\d+([^0-9.]|$)|(^|-)\d{8}(-|$)")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def references(root):
    """(file, line number, reference) of every image named under deploy/."""
    refs = []
    dockerfile = os.path.join(root, "deploy", "Dockerfile")
    stages = set()
    with open(dockerfile) as f:
        for n, line in enumerate(f, 1):
            m = re.match(r"\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
            if m:
                if m.group(1) not in stages:  # FROM an earlier stage is no image
                    refs.append((dockerfile, n, m.group(1)))
                if m.group(2):
                    stages.add(m.group(2))
    files = [os.path.join(root, "deploy", "compose.yaml")] + sorted(glob.glob(os.path.join(root, "deploy", "k8s", "*.yaml")))
    for path in files:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                m = re.match(r"\s*(?:-\s*)?image:\s*[\"']?([^\s\"'#]+)", line)
                if m:
                    refs.append((path, n, m.group(1)))
    return refs


def problem(ref, version):
    name, _, digest = ref.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        return "no tag (means latest)"
    repo, tag = name.rsplit(":", 1)
    if tag == "latest":
        return "tag latest"
    if not EXACT.search(tag):
        return f"tag {tag!r} is not an exact version (x.y.z or a dated build)"
    if digest and not DIGEST.match(digest):
        return f"digest {digest!r} is not sha256:<64 hex>"
    if repo.rsplit("/", 1)[-1] == "convertpulse" and tag != version:
        return f"our image should carry the workspace version {version}"
    return None


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
    with open(os.path.join(root, "Cargo.toml")) as f:
        version = re.search(r'^version\s*=\s*"([^"]+)"', f.read(), re.MULTILINE).group(1)
    refs = references(root)
    errors = 0
    unpinned = set()
    for path, n, ref in refs:
        why = problem(ref, version)
        where = f"{os.path.relpath(path, root)}:{n}"
        if why:
            print(f"FAIL {where} {ref}: {why}")
            errors += 1
        elif "@" not in ref and not ref.startswith("convertpulse:"):
            unpinned.add(ref)
    if not refs:
        print("FAIL no image references found under deploy/")
        errors += 1
    for ref in sorted(unpinned):
        print(f"note {ref}: exact version, no digest")
    print(f"{len(refs)} image references checked, {errors} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
