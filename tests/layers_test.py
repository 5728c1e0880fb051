#!/usr/bin/env python3
"""The folders of lib/ are layers (lib/LAYERS): no folder includes one on its
own line or below it. Reads every `#include "x/..."` in lib/; exits 1 naming
each include that reaches up or sideways, 0 when there is none.

`layers_test.py LIB_DIR` checks that tree; with --self-test it also checks
that one deliberate upward include in a copy of the tree is found."""
import os
import re
import shutil
import sys
import tempfile

INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/', re.MULTILINE)


def read_layers(lib):
    """{folder: level} from LAYERS: one level a line, peers on one line."""
    levels = {}
    with open(os.path.join(lib, "LAYERS"), encoding="utf-8") as layers:
        for line in layers:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            names, _, what = line.partition(":")
            if not what.strip():
                raise SystemExit(f"lib/LAYERS: '{line}' says nothing of what the layer owns")
            for name in names.split():
                if name in levels:
                    raise SystemExit(f"lib/LAYERS: {name} is named twice")
                levels[name] = len(set(levels.values()))
    return levels


def violations(lib):
    levels = read_layers(lib)
    found = []
    folders = sorted(d for d in os.listdir(lib) if os.path.isdir(os.path.join(lib, d)))
    for folder in folders:
        if folder not in levels:
            found.append(f"lib/{folder}/ is not in lib/LAYERS")
            continue
        for root, _, files in os.walk(os.path.join(lib, folder)):
            for name in sorted(files):
                if not name.endswith((".h", ".cpp")):
                    continue
                path = os.path.join(root, name)
                with open(path, encoding="utf-8", errors="replace") as source:
                    text = source.read()
                for match in INCLUDE.finditer(text):
                    target = match.group(1)
                    if target == folder or target not in levels:
                        continue
                    if levels[target] >= levels[folder]:
                        line = text.count("\n", 0, match.start()) + 1
                        where = os.path.relpath(path, os.path.dirname(lib))
                        found.append(f"{where}:{line}: lib/{folder}/ includes {target}/, "
                                     f"which is {'a peer' if levels[target] == levels[folder] else 'above it'} in lib/LAYERS")
    return found


def self_test(lib):
    """One upward include in a copy of the tree must be found, by file and line."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = os.path.join(scratch, "lib")
        shutil.copytree(lib, copy)
        victim = os.path.join(copy, "common", "text.h")
        with open(victim, "a", encoding="utf-8") as out:
            out.write('\n#include "admin/admin_server.h"\n')
        found = violations(copy)
        if not any("lib/common/text.h" in f and "includes admin/" in f for f in found):
            print("self-test: an upward include into lib/common/text.h went unnoticed", file=sys.stderr)
            return False
        print(f"self-test: the deliberate upward include was found: {found[0]}")
    return True


def main():
    args = [a for a in sys.argv[1:] if a != "--self-test"]
    lib = os.path.abspath(args[0] if args else os.path.join(os.path.dirname(__file__), "..", "lib"))
    found = violations(lib)
    for line in found:
        print(line, file=sys.stderr)
    ok = not found
    if "--self-test" in sys.argv[1:]:
        ok = self_test(lib) and ok
    print("layers: every include of lib/ reaches down" if ok else "layers: an include reaches up or sideways")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
