#!/usr/bin/env python3
"""Pick a few seeds that keep most of what a grown corpus reaches.

    fuzz/select_seeds.py HARNESS_BINARY SEED_DIR MAX INPUT_DIR...

Runs the harness's merge over the inputs with a control file, reads the
features each input reaches, and copies into SEED_DIR, as grown_<sha1>, the
at most MAX inputs a greedy set cover picks (each adds the most features
not yet reached; ties go to the shorter input). The committed corpora stay
small this way: ctest runs every seed before it starts fuzzing, so a seed
corpus of hundreds of inputs would eat the whole short fuzzing time.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    binary, seed_dir, limit, inputs = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    with tempfile.TemporaryDirectory() as tmp:
        control = os.path.join(tmp, "control")
        out = os.path.join(tmp, "out")
        os.mkdir(out)
        env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "detect_leaks=0"))
        subprocess.run([binary, "-merge=1", "-merge_control_file=" + control, out] + inputs,
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        with open(control) as f:
            lines = f.read().splitlines()
        n = int(lines[0])
        files = lines[2:2 + n]
        features = {}
        for line in lines[2 + n:]:
            parts = line.split()
            if parts and parts[0] == "FT":
                features[int(parts[1])] = set(int(x) for x in parts[2:])
    covered = set()
    chosen = []
    while len(chosen) < limit:
        best, gain = None, 0
        for i, ft in features.items():
            g = len(ft - covered)
            if g > gain or (g == gain and g > 0 and os.path.getsize(files[i]) < os.path.getsize(files[best])):
                best, gain = i, g
        if best is None:
            break
        chosen.append(best)
        covered |= features.pop(best)
    total = set().union(covered, *features.values())
    os.makedirs(seed_dir, exist_ok=True)
    for i in chosen:
        data = open(files[i], "rb").read()
        target = os.path.join(seed_dir, "grown_" + hashlib.sha1(data).hexdigest()[:12])
        if not os.path.exists(target):  # a seed chosen again stays as it is
            shutil.copyfile(files[i], target)
    print("%s: %d of %d inputs kept, %d of %d features" % (os.path.basename(binary), len(chosen), n,
                                                            len(covered), len(total)))


if __name__ == "__main__":
    main()
