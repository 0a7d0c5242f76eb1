#!/usr/bin/env python3
"""Regenerates apk-oracle.tsv: version pairs and the order apk-tools itself gives them.

Debian has no apk-tools package, so CI cannot ask apk live; this file records what the
real `apk version -t A B` printed, once, for pairs drawn from apk.txt (real Alpine versions)
plus pairs of grammar-valid versions that share a prefix and differ in their tail (leading
zeros, letters, suffixes, hashes, revisions), which is where orderings go wrong.

    APK3=/path/to/apk-3.x APK2=/path/to/apk-2.14.x testdata/apk-oracle.py

APK3 is apk-tools v3.0.6 and APK2 apk-tools 2.14-stable (9c5d9efb), both built from their
upstream sources with `make LUA=no` (v3: also `ZSTD=no`, and a strlcpy shim on glibc < 2.38).
Columns: a, apk 3 result, b, apk 2 result (one of < = >).

It also writes apk-oracle-valid.tsv: every version of apk.txt and some malformed variants,
with `valid` or `invalid` as `apk version -c` (apk 3) judges them.
"""

import os
import random
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
SUFFIXES = ["alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p"]


def number(rng):
    n = str(rng.choice([0, 1, 2, 3, 5, 9, 10, 12, 99, 100, 2023, 20240101]))
    if rng.random() < 0.25:
        n = "0" * rng.randint(1, 2) + n
    return n


def tail(rng):
    """A random grammar-valid continuation after the numeric components."""
    out = ""
    if rng.random() < 0.3:
        out += rng.choice("abcz")
    for _ in range(rng.choice([0, 0, 1, 1, 2])):
        out += "_" + rng.choice(SUFFIXES)
        if rng.random() < 0.7:
            out += number(rng)
    if rng.random() < 0.15:
        out += "~" + "".join(rng.choice("0123456789abcdef") for _ in range(rng.randint(1, 4)))
    if rng.random() < 0.6:
        out += "-r" + number(rng)
    return out


def generated(rng):
    base = number(rng)
    pairs = []
    for _ in range(2):
        v = base
        for _ in range(rng.randint(0, 3)):
            v += "." + number(rng)
        pairs.append(v + tail(rng))
    # Half of the pairs share their numeric part and differ only in the tail.
    if rng.random() < 0.5:
        head = pairs[0].split("_")[0].split("-")[0].split("~")[0].rstrip("abcz")
        pairs[1] = head + tail(rng)
    return pairs


def apk(binary, a, b):
    out = subprocess.run([binary, "version", "-t", a, b], capture_output=True, text=True)
    return out.stdout.strip() or "?"


def mangle(rng, v):
    """A small corruption of a real version: most are invalid, some stay valid."""
    i = rng.randint(0, len(v))
    return v[:i] + rng.choice(["", ".", "_", "-", "-r", "~", "A", "a", "_p", "__", "..", " ", "+"]) + v[i + rng.randint(0, 2):]


def invalid_set(binary, versions):
    out = subprocess.run([binary, "version", "-c", *versions], capture_output=True, text=True)
    return set(out.stdout.split())


def main():
    apk3, apk2 = os.environ["APK3"], os.environ["APK2"]
    rng = random.Random(440)
    with open(os.path.join(HERE, "apk.txt")) as f:
        real = [line.strip() for line in f if line.strip()]
    pairs = []
    # Neighbours in string order: mostly the same package's versions.
    for i in range(len(real) - 1):
        pairs.append((real[i], real[i + 1]))
    for _ in range(1000):
        pairs.append((rng.choice(real), rng.choice(real)))
    for _ in range(2500):
        pairs.append(tuple(generated(rng)))
    candidates = sorted(set(real + [mangle(rng, rng.choice(real)) for _ in range(600)]))
    # A leading "-" would be taken for an option.
    candidates = [c for c in candidates if c and " " not in c and not c.startswith("-")]
    invalid = invalid_set(apk3, candidates)
    with open(os.path.join(HERE, "apk-oracle-valid.tsv"), "w") as out:
        for c in candidates:
            out.write(f"{c}\t{'invalid' if c in invalid else 'valid'}\n")
    seen = set()
    with open(os.path.join(HERE, "apk-oracle.tsv"), "w") as out:
        for a, b in pairs:
            if (a, b) in seen:
                continue
            seen.add((a, b))
            r3, r2 = apk(apk3, a, b), apk(apk2, a, b)
            if r3 not in ("<", "=", ">"):
                # apk 3 refuses the pair: a malformed secdb entry, recorded as invalid.
                assert a in invalid or b in invalid, (a, b, r3)
                continue
            out.write(f"{a}\t{r3}\t{b}\t{r2}\n")


if __name__ == "__main__":
    main()
