"""sha256 of every artifact a build wrote, and the comparison of two such lists (issue 19: behaviour
unchanged by a refactor, proven byte for byte).

    python bench/artifact_hashes.py hash BUILD_DIR > before.json
    python bench/artifact_hashes.py diff before.json after.json [--ignore KEY ...]

`diff` names every file that differs. For JSON files it also names the keys whose values differ, so a
difference confined to fields that record code versions (--ignore) can be told from a real one.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

# what a build writes; logs and Snakemake's own metadata are not artifacts
ARTIFACT_DIRS = ("data/interim", "data/processed", "data/reports", "data/cache", "models", "metrics",
                 "results",
                 "plots")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hash_build(root):
    root = Path(root)
    files = {}
    for d in ARTIFACT_DIRS:
        for p in sorted((root / d).rglob("*")):
            if p.is_file() and not p.is_symlink():
                rel = p.relative_to(root).as_posix()
                entry = {"sha256": sha256(p)}
                if p.suffix == ".json":
                    try:
                        entry["json"] = json.loads(p.read_text())
                    except ValueError:
                        pass
                files[rel] = entry
    return files


def _leaves(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{prefix}[{i}]")
    else:
        yield prefix, obj


def _names(key: str, ignored: str) -> bool:
    """Whether a leaf's dotted key is, ends with, or lies under an ignored key."""
    parts = key.replace("[", ".[").split(".")
    return ignored in parts or key == ignored or key.startswith(ignored + ".")


def diff(before, after, ignore=()):
    """Lines naming each difference; empty when the builds are the same but for ignored keys."""
    lines = []
    for path in sorted(set(before) | set(after)):
        a, b = before.get(path), after.get(path)
        if a is None or b is None:
            lines.append(f"{path}: only {'after' if a is None else 'before'}")
        elif a["sha256"] != b["sha256"]:
            if "json" in a and "json" in b:
                la, lb = dict(_leaves(a["json"])), dict(_leaves(b["json"]))
                keys = [k for k in sorted(set(la) | set(lb)) if la.get(k) != lb.get(k)]
                real = [k for k in keys if not any(_names(k, i) for i in ignore)]
                if real:
                    more = " …" if len(real) > 8 else ""
                    lines.append(f"{path}: JSON differs at {', '.join(real[:8])}{more}")
            else:
                lines.append(f"{path}: bytes differ")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("hash", help="hash every artifact of a built tree (JSON to stdout)")
    h.add_argument("build")
    d = sub.add_parser("diff", help="compare two hash lists; exit 1 when they differ")
    d.add_argument("before")
    d.add_argument("after")
    d.add_argument("--ignore", nargs="*", default=[], help="JSON keys that record code versions")
    args = ap.parse_args(argv)
    if args.cmd == "hash":
        json.dump(hash_build(args.build), sys.stdout, indent=1, sort_keys=True, ensure_ascii=False)
        return 0
    before, after = (json.loads(Path(p).read_text()) for p in (args.before, args.after))
    lines = diff(before, after, args.ignore)
    print(f"{len(before)} files before, {len(after)} after, {len(lines)} differences")
    print("\n".join(lines))
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
