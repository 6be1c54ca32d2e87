#!/usr/bin/env python3
"""Checks that no module of a crate imports, directly or through others, a module that imports
it back: the compiler keeps the crates' layering, this keeps each crate's modules in layers too.

Usage: python3 scripts/check-imports.py [CRATE_SRC_DIR ...]   (exit 1 and the circles if any)
With no argument: every crate of the workspace (engine/*/src, sdk/src, benches/src).

A module's imports are the paths it names with `crate::` or `super::` outside comments and
`#[cfg(test)]` modules (tests may reach anywhere). A module's submodules count as part of it
for what it names elsewhere; a module naming its own descendants, or a descendant naming an
ancestor, is no circle.
"""

import os
import re
import sys


def modules(src):
    """Module path ('a::b') -> file, for every .rs file under src (lib.rs, main.rs excepted)."""
    found = {}
    for folder, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(folder, name)
            parts = os.path.relpath(path, src)[:-3].split(os.sep)
            if parts[-1] == "mod":
                parts = parts[:-1]
            if parts in (["lib"], ["main"]) or not parts:
                continue
            found["::".join(parts)] = path
    return found


def code(text):
    """The text without comments and without `#[cfg(test)] mod ... { ... }` blocks."""
    text = re.sub(r"(?m)//.*$", "", text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\([a-z]+\))?\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def names(text):
    """Every path named after `crate::` or `super::`, braces expanded one level deep."""
    found = []
    for base, rest in re.findall(r"\b(crate|super)::((?:[A-Za-z_][A-Za-z0-9_]*::)*(?:\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*))", text):
        prefix, _, last = rest.rpartition("::")
        if last.startswith("{"):
            for item in last[1:-1].split(","):
                item = item.strip().split(" as ")[0].split("::")[0].strip()
                if item and item != "self":
                    found.append((base, (prefix + "::" if prefix else "") + item))
                elif item == "self" and prefix:
                    found.append((base, prefix))
        else:
            found.append((base, rest))
    return found


def edges(src):
    mods = modules(src)
    out = {m: set() for m in mods}
    for module, path in mods.items():
        with open(path, encoding="utf-8") as f:
            text = code(f.read())
        is_mod_rs = path.endswith("mod.rs")
        for base, named in names(text):
            parts = named.split("::")
            if base == "super":
                here = module.split("::")
                parent = here if is_mod_rs else here[:-1]
                parent = parent[:-1] if is_mod_rs else parent
                parts = parent + parts
            target = None
            for n in range(len(parts), 0, -1):
                candidate = "::".join(parts[:n])
                if candidate in mods:
                    target = candidate
                    break
            if target is None or target == module:
                continue
            if target.startswith(module + "::") or module.startswith(target + "::"):
                continue
            out[module].add(target)
    return out


def circles(graph):
    """Strongly connected components of more than one module (Tarjan's, iterative)."""
    index, low, stack, on, result, counter = {}, {}, [], set(), [], [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    result.append(sorted(component))
    return result


def main():
    failed = False
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    crates = sys.argv[1:] or sorted(
        os.path.join(root, d)
        for d in [os.path.join("engine", c, "src") for c in os.listdir(os.path.join(root, "engine"))]
        + ["sdk/src", "benches/src"]
        if os.path.isdir(os.path.join(root, d))
    )
    for src in crates:
        graph = edges(src)
        for circle in circles(graph):
            failed = True
            inside = {m: sorted(graph[m] & set(circle)) for m in circle}
            print(f"{src}: an import circle between {', '.join(circle)}:")
            for m, targets in inside.items():
                print(f"  {m} -> {', '.join(targets)}")
    if failed:
        sys.exit(1)
    print(f"check-imports: no import circle in {len(crates)} crate(s)")


if __name__ == "__main__":
    main()
