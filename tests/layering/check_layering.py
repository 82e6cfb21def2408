#!/usr/bin/env python3
"""Layering, enforced: a module of src/ includes only its own headers and those of the modules it
links (directly or through them), so an upward or sideways include fails the build's tests.

    check_layering.py LAYERING_JSON SRC_DIR

LAYERING_JSON is written by CMake at generate time (CMakeLists.txt): for each module target, its
source directory and the targets it links. A header belongs to the module whose directory is the
longest prefix of its path; tests (`test/` directories) are not checked, since a test may reach
into the modules it drives. Exit 1 with one line per violation, 0 when the layering holds.
"""
import json
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def closure(graph, start):
    seen, todo = set(), [start]
    while todo:
        t = todo.pop()
        for d in graph.get(t, ()):
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def main(layering_json, src):
    with open(layering_json) as f:
        modules = json.load(f)
    src = os.path.realpath(src)
    dirs = {}  # module directory relative to src -> target
    for target, m in modules.items():
        rel = os.path.relpath(os.path.realpath(m["dir"]), src)
        dirs[rel] = target
    graph = {t: [d for d in m["deps"].split(";") if d in modules] for t, m in modules.items()}

    def owner(rel_path):
        best = None
        for d in dirs:
            if (rel_path == d or rel_path.startswith(d + "/")) and (best is None or len(d) > len(best)):
                best = d
        return dirs.get(best)

    violations = []
    for rel_dir, target in sorted(dirs.items()):
        allowed = closure(graph, target) | {target}
        for root, subdirs, files in os.walk(os.path.join(src, rel_dir)):
            rel_root = os.path.relpath(root, src)
            # nested modules are checked on their own; tests are not checked
            subdirs[:] = [s for s in subdirs
                          if s != "test" and os.path.join(rel_root, s) not in dirs]
            for name in files:
                if not name.endswith((".hpp", ".cpp", ".h")):
                    continue
                path = os.path.join(root, name)
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                for inc in INCLUDE.findall(text):
                    if not os.path.exists(os.path.join(src, inc)):
                        continue  # generated (protobuf) or not one of ours
                    used = owner(inc)
                    if used is not None and used not in allowed:
                        violations.append("%s: includes %s (%s), which %s does not link" %
                                          (os.path.relpath(path, os.path.dirname(src)), inc,
                                           used, target))
    for v in violations:
        print(v)
    print("layering: %d modules, %d violations" % (len(dirs), len(violations)))
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
