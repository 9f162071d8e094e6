#!/usr/bin/env python3
"""The provider contract (include/ekmfs/provider.h, issue 13): a key service
is its own file under src/keys/providers/ plus one line in the table
(src/keys/provider.c). Everything else asks the descriptor, so no provider
name may appear in the code outside those files; the docs and the tests may
name them.

The names are read from the descriptors themselves (`.name = "..."` in
each providers/*.c file that defines a `struct ekmfs_provider_desc`). A
name is looked for as a C string literal ("local") everywhere, and as a
bare word too when it cannot be an ordinary English word (it holds a '-').

Usage: provider_names.py SOURCE_ROOT. Exit 0 when clean; 1 with the
offending lines otherwise.
"""
import re
import sys
from pathlib import Path

CODE_DIRS = ("src", "include", "tools", "contrib", "bench")
CODE_EXT = {".c", ".h", ".py", ".sh", ".in", ".service", ".build"}


def provider_names(root):
    """{name: its provider file} from the descriptors."""
    names = {}
    for f in sorted((root / "src/keys/providers").glob("*.c")):
        text = f.read_text()
        m = re.search(r"const struct ekmfs_provider_desc \w+ = \{(.*?)\n\};", text, re.S)
        if m:
            n = re.search(r'\.name = "([^"]+)"', m.group(1))
            names[n.group(1)] = f
    return names


def main(root):
    root = Path(root)
    names = provider_names(root)
    if len(names) < 3:
        print("provider_names: found only %s in src/keys/providers/*.c" % sorted(names))
        return 1
    table = root / "src/keys/provider.c"
    bad = []
    for d in CODE_DIRS:
        for f in sorted((root / d).rglob("*")):
            if not f.is_file() or (f.suffix not in CODE_EXT and f.name != "meson.build"):
                continue
            text = f.read_text(errors="replace")
            for name, own in names.items():
                if f == table or f in (own, own.with_suffix(".h")):
                    continue
                pats = [re.escape('"%s"' % name)]
                if "-" in name:
                    pats.append(r"(?<![\w-])%s(?![\w-])" % re.escape(name))
                for i, line in enumerate(text.splitlines(), 1):
                    if any(re.search(p, line) for p in pats):
                        bad.append("%s:%d: provider name '%s': %s"
                                   % (f.relative_to(root), i, name, line.strip()))
    for b in bad:
        print(b)
    if bad:
        print("provider_names: %d line(s) name a provider outside its file and the "
              "table; ask its descriptor (include/ekmfs/provider.h) instead" % len(bad))
        return 1
    print("provider_names: %s appear only in their provider files and the table"
          % ", ".join(sorted(names)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]))
