#!/usr/bin/env python3
"""Checks the module's layering (STYLE.md, issue 14): every `crate::`/`super::` import of a
Rust file goes to a layer below its own, or to a sibling of the same layer without a cycle,
and nothing below the net device imports it. Also reports where `unsafe` is and how many
lines of C glue there are. Prints one KTAP-style line, `ok 1 layering` or `not ok 1 layering`
with the offending imports above it; exits 1 on a violation.

Usage: scripts/layers.py [REPO]
"""
import os
import re
import sys

# Bottom to top; a file may import from a lower layer, or a sibling in its own layer.
LAYERS = [
    ("uapi", "ring"),  # pure: also built on the host (tests/host, tests/fuzz)
    ("sys",),  # FFI: knows no device type
    ("user", "mem"),
    ("guest",),
    ("dev",),  # the generic vhost device (vhost.c)
    ("stats", "zerocopy"),  # parts of the net device
    ("net",),  # the net device (net.c), with net/*.rs
    ("vhost_rs",),  # crate root
]
RANK = {m: i for i, layer in enumerate(LAYERS) for m in layer}
# Files that may hold `unsafe` besides sys/: constructors whose contract is "the device
# outlives what it registers" (polls, the worker, zero-copy completions).
UNSAFE_OK = {"dev", "net", "zerocopy"}


def modules(repo):
    out = {}
    for d, _, files in os.walk(repo):
        rel = os.path.relpath(d, repo)
        if rel.split(os.sep)[0] in ("tests", ".git", ".vm-logs", "bench", "scripts"):
            continue
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(rel, f) if rel != "." else f
            name = path[:-3].replace(os.sep, "::").replace("::mod", "")
            out[name] = os.path.join(repo, path)
    return out


def imports(text):
    text = re.sub(r"//[^\n]*", "", text)
    deps = set()
    for m in re.finditer(r"\bcrate::\{(.*?)\};", text, re.S):
        for part in re.findall(r"(?:^|[,{]\s*)([a-z_]+)(?=::|\s*,|\s*\}|$)", m.group(1)):
            deps.add(part)
    deps.update(re.findall(r"\bcrate::([a-z_]+)\b", text))
    return deps


def main():
    repo = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    mods = modules(repo)
    bad = []
    graph = {}
    for name, path in sorted(mods.items()):
        top = name.split("::")[0]
        if top not in RANK:
            bad.append(f"{path}: module {top} has no layer in scripts/layers.py")
            continue
        text = open(path).read()
        deps = {d for d in imports(text) if d in RANK and d != top}
        graph.setdefault(top, set()).update(deps)
        for d in sorted(deps):
            if RANK[d] > RANK[top]:
                bad.append(f"{name} imports {d}, a layer above it")
        if "unsafe" in re.sub(r"//[^\n]*", "", text) and top not in UNSAFE_OK and top != "sys":
            bad.append(f"{name} has unsafe code outside sys/ and {sorted(UNSAFE_OK)}")
    # Cycles among same-layer siblings (and any other).
    state = {}

    def visit(n, stack):
        state[n] = 1
        for d in graph.get(n, ()):
            if state.get(d) == 1:
                bad.append("import cycle: " + " -> ".join(stack + [n, d]))
            elif d not in state:
                visit(d, stack + [n])
        state[n] = 2

    for n in graph:
        if n not in state:
            visit(n, [])
    clines = 0
    for f in ("sys/helpers.c", "sys/helpers.h"):
        p = os.path.join(repo, f)
        if os.path.exists(p):
            clines += sum(1 for _ in open(p))
    print(f"# C glue (sys/helpers.[ch]): {clines} lines")
    if bad:
        for b in bad:
            print(f"# {b}")
        print("not ok 1 layering")
        return 1
    print("ok 1 layering")
    return 0


if __name__ == "__main__":
    sys.exit(main())
