#!/usr/bin/env python3
"""Write the hand-made seeds of the fuzz harnesses (fuzz/corpus/<name>/).

Each seed is a short program in the harness's input format (see the
comment at the top of each harness) that reaches one family of its
operations; a few more are fixed pseudo-random byte strings. The output is
deterministic: run it again after changing a format and commit the result.
The other seeds there, grown_*, are inputs the fuzzers found, picked by
select_seeds.py.
"""
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def size_small(n):        # rd_size: shape 0 -> v % 1025
    return bytes([0, n & 0xff, (n >> 8) & 0xff, 0])


def size_medium(n):       # shape 9 -> v % 65537
    return bytes([9, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff])


def size_large(n):        # shape 12 -> 65536 + v % ...
    v = n - 65536
    return bytes([12, v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff])


def size_huge(n):         # shape 14 -> 2 MiB + 1 + v % 2 MiB
    v = n - (2 << 20) - 1
    return bytes([14, v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff])


def size_edge(i):         # shape 15 -> edges[v % 24]
    return bytes([15, i, 0, 0])


def api_ops():
    seeds = {}
    sizes = [size_small(24), size_small(1000), size_medium(20000), size_large(300000), size_huge(3 << 20)]
    prog = b""
    for slot, sz in enumerate(sizes):
        prog += bytes([0, slot]) + sz             # malloc
    for slot in range(5):
        prog += bytes([4, slot]) + size_small(500) + bytes([0])   # realloc
    for slot in range(5):
        prog += bytes([9, slot])                  # usable_size, then use it all
    for slot in range(5):
        prog += bytes([7 | (slot << 4), slot])    # free, sized free, aligned sized free, realloc 0
    seeds["malloc_realloc_free"] = prog
    prog = b""
    for i in range(9):                            # every aligned call
        prog += bytes([6, i, i]) + size_small(100 + i) + bytes([4 + i])
    prog += bytes([6, 9, 0]) + size_small(10) + bytes([0x81])  # a bad alignment
    seeds["aligned"] = prog
    prog = bytes([2, 0]) + size_medium(9000) + bytes([3, 1, 4]) + size_small(800) + bytes([14, 0]) + size_small(3)
    seeds["zero_and_impossible"] = prog
    prog = bytes([10, 0x00, 0, 0])                # heap 0 new
    prog += bytes([10, 0x10, 0, 0])               # heap 1 new
    for slot in range(6):
        prog += bytes([11, slot, (slot % 2) << 4 | slot % 4]) + size_small(40 * slot + 1) + b"abcdef"
    prog += bytes([10, 0x03, 0, 0])               # set default heap 0
    prog += bytes([0, 7]) + size_small(64)        # malloc into it
    prog += bytes([10, 0x04, 0, 0])               # visit heap 0
    prog += bytes([10, 0x07, 0, 0])               # check_owned
    prog += bytes([10, 0x01, 0, 0])               # delete heap 0 (blocks live on)
    prog += bytes([10, 0x12, 0, 0])               # destroy heap 1
    prog += bytes([10, 0x46, 0, 0])               # validate
    seeds["heaps"] = prog
    prog = bytes([12, 0, 10]) + b"helloworld" + bytes([12 | 0x10, 1, 20]) + b"x" * 20 + bytes([5])
    seeds["strings"] = prog
    prog = b"".join(bytes([0, i]) + size_edge(i) for i in range(24)) + bytes([13 | 0x10, 0, 15, 0])
    seeds["edges_collect"] = prog
    return seeds


def threads_ops():
    seeds = {}
    # 4 threads; thread 1 allocates, thread 2 frees them (remote), thread 0 validates
    prog = bytes([2])
    for i in range(20):
        prog += bytes([1, 0, i, 10 + i])          # thread 1: malloc small
    for i in range(20):
        prog += bytes([2, 2, i])                  # thread 2: free
    prog += bytes([0, 8, 0])
    seeds["remote_frees"] = prog
    prog = bytes([1])                             # 3 threads
    prog += bytes([1, 5, 0, 16, 60])              # thread 1 fills a class (full pages)
    for i in range(30):
        prog += bytes([2, 2, i])                  # thread 2 frees into full pages: delayed frees
    prog += bytes([1, 0, 100, 16])                # thread 1 allocates again: takes them in
    seeds["delayed_frees"] = prog
    prog = bytes([0])                             # 2 threads
    for i in range(10):
        prog += bytes([1, 0, i, 50])
    prog += bytes([0xE1, 0])                      # thread 1 exits with live blocks
    prog += bytes([0, 0, 200, 50])                # thread 0 allocates: reclaims
    for i in range(10):
        prog += bytes([0, 2, i])
    seeds["abandon_reclaim"] = prog
    prog = bytes([2])
    for t in range(3):
        prog += bytes([t, 6, 0])                  # heap new
        for i in range(5):
            prog += bytes([t, 0x10, t * 10 + i, 30])  # from the heap
    prog += bytes([0xF0, 7])                      # burst
    prog += bytes([1, 0x16, 0])                   # destroy thread 1's heap
    seeds["heaps_burst"] = prog
    return seeds


def misuse():
    seeds = {}
    prog = b""
    for slot in range(8):
        prog += bytes([0, slot, 40])              # malloc
    for path in range(4):
        prog += bytes([8, path, path])            # double free on each path
    prog += bytes([8, 5, 0, 0])
    seeds["double_free_paths"] = prog
    prog = bytes([0, 0, 165, 12, 0, 0, 0])        # a medium block (rd_size shape 12: large)
    prog += bytes([0, 1, 170, 14, 0, 0, 0])       # a huge block
    prog += bytes([8, 0, 1, 8, 1, 2])             # double frees of both
    seeds["double_free_large_huge"] = prog
    prog = b""
    for slot in range(6):
        prog += bytes([0, slot, 20])
    prog += bytes([5, 2]) + bytes([13, 1, 0]) + bytes(range(1, 9))   # free one, then overwrite its link
    seeds["link_overwrite"] = prog
    prog = b""
    for slot in range(6):
        prog += bytes([0, slot, 20])
    prog += bytes([5, 3]) + bytes([14, 2, 1, 40, 0, 0x41])  # overflow off a neighbour
    seeds["overflow"] = prog
    prog = bytes([0, 0, 30]) + bytes([11, 0, 0]) + bytes([11, 0x10, 1]) + bytes([11, 0x20, 2])
    prog += bytes([11, 1, 0, 0, 5, 0, 0]) + bytes([11, 2, 1, 0, 3, 0]) + bytes([11, 3, 1, 0, 1, 0]) + bytes([11, 3, 0, 0])
    seeds["invalid_pointers"] = prog
    prog = bytes([0, 0, 30]) + b"".join(bytes([12, i]) for i in range(7)) + bytes([10, 0])
    seeds["foreign_heap_and_freed_queries"] = prog
    prog = bytes([0x1F, 4, 10, 20, 30, 200]) + bytes([8, 0, 3]) + bytes([5, 1]) + bytes([15, 0])
    seeds["exiting_thread"] = prog
    prog = bytes([4, 40, 47]) + b"".join(bytes([6 | 0x10, i]) for i in range(10)) + bytes([8, 20, 2]) + bytes([9, 0, 0])
    seeds["full_pages_remote"] = prog
    # level 2: overflows into the canary (op 14: slot, sub (2: usable_size
    # first), k-1 (u16), value), then the block's end through any_live (its
    # byte / 64: 0 free, 1 remote free, 2 realloc)
    prog = b""
    for slot in range(4):
        prog += bytes([0, slot, 6])                                # 19 bytes
    prog += bytes([0, 4, 170]) + size_medium(20000) + bytes([0, 5, 170]) + size_large(300000)
    prog += bytes([14, 0, 2, 4, 0, 0x41]) + bytes([5, 0])         # past the zero byte, usable_size, free
    prog += bytes([14, 1, 2, 2, 0, 0x00]) + bytes([5, 64 + 1])    # fill bytes only, remote free
    prog += bytes([14, 2, 2, 63, 0, 0x7f]) + bytes([5, 128 + 2]) + bytes([5, 2])  # to the size field; realloc, free
    prog += bytes([14, 4, 2, 5, 0, 0x01]) + bytes([5, 4]) + bytes([14, 5, 0, 30, 0, 0xff]) + bytes([5, 64 + 5])
    seeds["canary_overflow"] = prog
    # level 2: a write after free past the link of a block that left the
    # quarantine (op 13, sub 0: freed block, offset - 8 (u16), bytes)
    prog = bytes([4, 20, 40])                                      # 40 blocks of 62 bytes
    for slot in range(1, 40):
        prog += bytes([5, slot])                                   # free all but slot 0
    prog += bytes([13, 0, 3, 4, 0]) + bytes([0x5a] * 8) + bytes([15, 0])
    seeds["write_after_free_zeroed"] = prog
    prog = bytes([0, 0, 20, 0, 1, 20, 5, 1]) + bytes([13, 0, 0, 1, 0]) + bytes([1] * 8)  # still in the quarantine
    seeds["write_after_free_quarantined"] = prog
    return seeds


def options():
    seeds = {}
    # selector s, k = s % 24: k < 20: option k // 2, HARDHEAP_ (even) or MIMALLOC_ (odd);
    # k >= 20: j = (s // 24) * 4 + k - 20; j < 4: an unknown name; else (j - 4) % 14 picks
    # options 10.. and ERROR_FILE (12, 13) in turn, HARDHEAP_ (even) or MIMALLOC_ (odd)
    # (fuzz/options.c, select_name)
    def entry(sel, value):
        return bytes([sel]) + value + b"\0"
    seeds["valid"] = entry(0, b"1") + entry(6, b"32") + entry(8, b"0") + entry(12, b"8") + entry(19, b"yes")
    seeds["invalid"] = entry(0, b"maybe") + entry(6, b"99999999999999999999") + entry(8, b"-2") + entry(12, b"1025")
    seeds["alias"] = entry(1, b"on") + entry(9, b"-1") + entry(8, b"") + entry(3, b"DISABLED")
    seeds["unknown"] = entry(20, bytes([5, 0, 1, 2, 3, 4]) + b"v") + entry(21, bytes([3, 9, 9, 9]) + b"1")
    seeds["guarded"] = entry(14, b"100") + entry(16, b"12345") + entry(15, b"7")
    seeds["words"] = entry(2, b"Enable") + entry(4, b"FALSE") + entry(10, b"no") + entry(18, b"+1")
    # GUARDED_MIN, GUARDED_PRECISE (alias), HARDHEAP_ERROR_FILE, MIMALLOC_ERROR_FILE, VERBOSE: the listing
    seeds["late_and_error_file"] = (entry(44, b"64") + entry(69, b"0") + entry(116, b"/tmp/hh-err.%p.log")
                                    + entry(117, b"alias.log") + entry(0, b"1"))
    return seeds


def write(name, seeds, rng_count):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    for old in os.listdir(d):  # the seeds select_seeds.py picked (grown_*) stay
        if not old.startswith("grown_"):
            os.remove(os.path.join(d, old))
    for key, data in seeds.items():
        with open(os.path.join(d, key), "wb") as f:
            f.write(data)
    rng = random.Random(name)
    for i in range(rng_count):
        with open(os.path.join(d, "random_%d" % i), "wb") as f:
            f.write(bytes(rng.randrange(256) for _ in range(rng.randrange(32, 400))))


if __name__ == "__main__":
    write("api_ops", api_ops(), 4)
    write("threads_ops", threads_ops(), 4)
    write("misuse", misuse(), 4)
    write("options", options(), 2)
    print("wrote", ", ".join(sorted(os.listdir(os.path.join(HERE, "corpus")))), file=sys.stderr)
