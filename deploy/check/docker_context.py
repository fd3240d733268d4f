"""Checks what the image's build context holds, from .dockerignore, without Docker.

The context is the repository root (deploy/Dockerfile, compose's `build: {context: ..}`), and
`COPY . .` sends all of it into a build stage. So:

1. Secrets, build output and local tools must stay out: each path in MUST_EXCLUDE must be
   ignored (`.run/` holds the JWT secret and NATS passwords of `make run` / `make cluster`).
2. What the Dockerfile copies must stay in: every source of a COPY without --from, and every
   workspace member's Cargo.toml (`COPY . .` builds the workspace).

Matching follows Docker's rules (moby/patternmatcher): paths relative to the context, `*` and
`?` within one path segment, `**` across segments, a pattern also matches everything under a
directory it matches, `!` re-includes, and the last matching line wins.

Usage: docker_context.py [repository root]; exits 1 on a problem.
"""

import os
import re
import sys

MUST_EXCLUDE = [
    ".run/jwt_secret",
    ".run/cluster/secrets.env",
    ".run/logs/api.log",
    "target/release/api",
    "target/debug/ingest",
    ".git/config",
    ".venv/bin/python",
    ".venv-deploy/k8s/bin/python",
    ".venv-schemathesis/bin/python",
    ".venv-smtp/bin/python",
    "node_modules/chart.js/package.json",
    "deploy/geoip/node_modules/x/package.json",
    "deploy/.env",
    "tracker/dist/convertpulse.min.js",
    "bench.log",
    "deploy/local/notes.tmp",
]


def compile_pattern(pattern):
    """A .dockerignore line (without `!`) as a regex over slash-separated paths."""
    out, i = "^", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern[i + 1 : i + 2] == "*":
                i += 1
                if pattern[i + 1 : i + 2] == "/":
                    i += 1
                out += ".*" if i + 1 >= len(pattern) else "(.*/)?"
            else:
                out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        elif c == "[":
            end = pattern.find("]", i)
            if end < 0:
                out += re.escape(c)
            else:
                out += pattern[i : end + 1]
                i = end
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + "$")


def read_rules(path):
    rules = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            if exclusion:
                line = line[1:].strip()
            line = os.path.normpath(line).replace(os.sep, "/").lstrip("/")
            rules.append((compile_pattern(line), exclusion))
    return rules


def ignored(rules, path):
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for regex, exclusion in rules:
        # A pattern matches the path or any directory above it.
        if any(regex.match(p) for p in prefixes):
            result = not exclusion
    return result


def copied_sources(dockerfile):
    """Sources of each COPY that reads the build context (no --from)."""
    sources = []
    with open(dockerfile) as f:
        text = f.read().replace("\\\n", " ")
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].upper() != "COPY" or any(w.startswith("--from") for w in words):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        sources += [s.rstrip("/") for s in args[:-1]]
    return sources


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
    dockerignore = os.path.join(root, ".dockerignore")
    if not os.path.exists(dockerignore):
        print("FAIL no .dockerignore: the build context would carry .run/ (secrets) and target/")
        return 1
    rules = read_rules(dockerignore)
    problems = [f"{p} would be in the build context" for p in MUST_EXCLUDE if not ignored(rules, p)]
    with open(os.path.join(root, "Cargo.toml")) as f:
        members = re.search(r"members\s*=\s*\[([^\]]*)\]", f.read()).group(1)
    needed = copied_sources(os.path.join(root, "deploy", "Dockerfile"))
    needed += [f"{m}/Cargo.toml" for m in re.findall(r'"([^"]+)"', members)] + ["Cargo.toml", "Cargo.lock"]
    for source in needed:
        if source == ".":
            continue
        if ignored(rules, source):
            problems.append(f"{source} is needed by deploy/Dockerfile (COPY) but ignored by .dockerignore")
        elif not os.path.exists(os.path.join(root, source)):
            problems.append(f"{source} is needed by deploy/Dockerfile (COPY) but missing")
    for p in problems:
        print(f"FAIL {p}")
    if not problems:
        print(f"ok   .dockerignore: {len(MUST_EXCLUDE)} secret/output paths out, {len(needed)} copied sources in")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
