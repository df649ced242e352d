#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_archive (tests/fuzz/corpus/archive/): row
programs in the byte language tools/fuzz/fuzz_archive.c reads, each building
an archive that reaches a different part of verify, the audit or export.

Usage: archive_seeds.py OUTDIR
"""
import os
import struct
import sys

OPS = dict(device=0, record=1, chunk=2, head=3, alarm=4, config=5, pull=6, verification=7,
           firmware=8, raw=9)
KIND = dict(power_on=1, treatment_start=3, treatment_end=4, cartridge_inserted=5,
            cartridge_removed=6, cartridge_refused=7, depth_changed=8, config_changed=11,
            clock_set=12, log_overflow=13)
F = dict(depth_um=1, speed_sps=2, duration_ms=4, cartridge_serial=8, cartridge_uses=16,
         lifetime_cartridges=32, strokes=64, fault_code=128, config_revision=256,
         clock_delta_ms=512, dropped=1024)
ORDER = ["depth_um", "speed_sps", "duration_ms", "cartridge_serial", "cartridge_uses",
         "lifetime_cartridges", "strokes", "fault_code", "config_revision", "clock_delta_ms",
         "dropped"]


def value(v):
    """value(): small values as 2 bytes, others as 8."""
    v &= (1 << 64) - 1
    if v < 65536:
        return bytes([3]) + struct.pack("<H", v)
    return bytes([1]) + struct.pack("<Q", v)


def seq_next():
    return bytes([4])


def seq_raw(s):
    return bytes([0]) + struct.pack("<Q", s & ((1 << 64) - 1))


def record_body(kind, dt_s, **fields):
    """gen_record(): kind, time step in seconds, fields in bit order."""
    mask = sum(F[k] for k in fields)
    out = bytes([kind - 1]) + struct.pack("<H", dt_s) + struct.pack("<H", mask)
    for k in ORDER:
        if k in fields:
            out += value(fields[k])
    return out


def device(i, key, serial=0):
    return bytes([OPS["device"], i, (serial << 2) | key]) + value(1000)


def record(pen, kind, dt_s, seq=None, **fields):
    return (bytes([OPS["record"], pen]) + (seq if seq is not None else seq_next()) +
            record_body(kind, dt_s, **fields) + bytes([0]))


def chunk(pen, recs, m=0, seq=None):
    """recs: (kind, dt_s, fields) of each record; m: the chunk op's damage bits."""
    out = bytes([OPS["chunk"], pen, m, len(recs) - 1]) + (seq if seq is not None else seq_next())
    for kind, dt, fields in recs:
        out += record_body(kind, dt, **fields)
    if m & 0x10:
        out += bytes([5])
    if m & 0x20:
        out += bytes([9, 3])
    if m & 0x40:
        out += value(7)
    if m & 0x80:
        out += value(9)
    if m & 0x08:
        out += value(1)
    if m & 3 == 1:
        out += bytes([1])
    return out


def head(pen, m=0):
    return bytes([OPS["head"], pen, m])


def alarm(pen, kind, seq, count, text=b"planted"):
    return (bytes([OPS["alarm"], pen]) + value(1767225600000) + bytes([kind]) + seq +
            value(count) + bytes([len(text)]) + text)


def config(pen, rev, dmin, dmax, max_s):
    return (bytes([OPS["config"], pen, 1]) + value(rev) + value(dmin) + value(dmax) +
            value(max_s) + value(1000) + value(rev))


def pull(pen, seq):
    return bytes([OPS["pull"], pen]) + value(1000) + seq + seq + bytes([1])


def treatment(pen, serial, depth, uses=1):
    return (record(pen, KIND["cartridge_inserted"], 60, cartridge_serial=serial,
                   cartridge_uses=uses) +
            record(pen, KIND["treatment_start"], 30, depth_um=depth, cartridge_serial=serial) +
            record(pen, KIND["depth_changed"], 600, depth_um=depth + 500) +
            record(pen, KIND["treatment_end"], 1200, duration_ms=1800000, strokes=100000) +
            record(pen, KIND["cartridge_removed"], 30))


def signed_log(pen):
    recs = [(KIND["power_on"], 10, {}),
            (KIND["cartridge_inserted"], 60, dict(cartridge_serial=77, cartridge_uses=1)),
            (KIND["treatment_start"], 30, dict(depth_um=1000, cartridge_serial=77)),
            (KIND["treatment_end"], 1800, dict(duration_ms=1800000))]
    return (chunk(pen, recs) + chunk(pen, recs[1:]) + head(pen) + chunk(pen, recs[:2]) +
            head(pen))


SEEDS = {
    # an empty archive, once through the CLI
    "empty": bytes([0]),
    # two unsigned pens, treatments, a cartridge reused across them, limits known
    "two-pens-reuse": bytes([1]) + device(0, 0) + device(1, 0, 1) + config(0, 1, 0, 3000, 7200) +
    config(1, 1, 0, 1000, 600) + record(0, KIND["power_on"], 1) + treatment(0, 5, 1000) +
    treatment(0, 6, 2500) + record(1, KIND["power_on"], 1) + treatment(1, 5, 1500) +
    record(1, KIND["config_changed"], 10, config_revision=2) + treatment(1, 9, 500, uses=2),
    # a signing pen: chained chunks, their records, signed heads; through the CLI
    "signed": bytes([0]) + device(2, 1) + pull(2, seq_raw(0)) + signed_log(2),
    # the same, then edited: a flipped byte, a foreign link, a record missing, one edited
    "signed-edited": bytes([1]) + device(2, 1) + signed_log(2) +
    chunk(2, [(KIND["power_on"], 5, {})], m=0x20) + chunk(2, [(KIND["power_on"], 5, {})], m=0x10) +
    chunk(2, [(KIND["power_on"], 5, {}), (KIND["power_on"], 5, {})], m=1) +
    chunk(2, [(KIND["power_on"], 5, {})], m=2) + head(2, m=4),
    # seqs at or above 2^63 beside a healthy pen (defect 12.5); through the CLI
    "hostile-seqs": bytes([0]) + device(0, 0) + device(1, 1, 1) + treatment(0, 3, 800) +
    record(1, KIND["power_on"], 1) + record(1, KIND["power_on"], 1, seq=seq_raw(-5)) +
    record(1, KIND["power_on"], 1, seq=seq_raw(-(1 << 63))) +
    chunk(1, [(KIND["power_on"], 5, {})], seq=seq_raw(-7)) +
    alarm(1, 0, seq_raw(-1), 1 << 63) + pull(1, seq_raw(-9)),
    # clock steps: -2^63 (defect 12.12), +2^63-1, a gap, an overflow
    "clock-extremes": bytes([1]) + device(0, 0) + record(0, KIND["power_on"], 1) +
    record(0, KIND["clock_set"], 1, clock_delta_ms=-(1 << 63)) +
    record(0, KIND["clock_set"], 1, clock_delta_ms=(1 << 63) - 1) +
    record(0, KIND["log_overflow"], 1, seq=bytes([1, 9]), dropped=1 << 40) +
    alarm(0, 0, seq_raw(3), 9) + treatment(0, 4, 100),
    # hostile configuration text and a signing pen with no chunk (defect 12.12)
    "config-text": bytes([1]) + device(3, 1) + device(0, 0) +
    bytes([OPS["config"], 0, 0, 24]) + b'{"revision":"\\\\\\"depth_' + value(5) + value(1) +
    record(0, KIND["config_changed"], 1, config_revision=1) + treatment(0, 8, 99999),
}

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
