#!/usr/bin/env python3
"""Generates the default theme's alert sounds (overlays/default/sounds/*.wav).

Run once from the repository root when a sound should change; the WAV files are committed.
Pure synthesis (sine partials with bell-like envelopes): no samples, no downloads.
"""
import math
import struct
import wave

RATE = 22050


def bell(freq, start, length, gain=0.5, partials=((1, 1.0), (2.0, 0.35), (3.01, 0.15), (4.2, 0.06))):
    """One bell-like note: a sharp attack and an exponential decay per partial."""
    notes = []
    for mult, amp in partials:
        notes.append((freq * mult, start, length, gain * amp, 4.0 + mult * 1.5))
    return notes


def render(notes, total):
    n = int(total * RATE)
    out = [0.0] * n
    for freq, start, length, gain, decay in notes:
        s0 = int(start * RATE)
        for i in range(int(length * RATE)):
            j = s0 + i
            if j >= n:
                break
            t = i / RATE
            attack = min(1.0, t / 0.004)
            env = attack * math.exp(-decay * t)
            out[j] += gain * env * math.sin(2 * math.pi * freq * t)
    peak = max(abs(x) for x in out) or 1.0
    scale = 0.8 / peak
    # A short fade-out so the file never ends on a click.
    fade = int(0.03 * RATE)
    for k in range(fade):
        out[n - 1 - k] *= k / fade
    return [int(max(-1, min(1, x * scale)) * 32767) for x in out]


def write(name, samples):
    with wave.open(f"overlays/default/sounds/{name}", "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"".join(struct.pack("<h", s) for s in samples))


def hz(semitones_from_a4):
    return 440.0 * 2 ** (semitones_from_a4 / 12)


# follow: a bright rising fourth (E5 -> A5)
write("follow.wav", render(bell(hz(7), 0, 0.6) + bell(hz(12), 0.11, 0.7), 0.85))
# share: three quick steps (C6 E6 G6)
write("share.wav", render(bell(hz(15), 0, 0.4, 0.4) + bell(hz(19), 0.08, 0.4, 0.4) + bell(hz(22), 0.16, 0.55, 0.45), 0.75))
# gift: a sparkling arpeggio with a low root (A4 C#5 E5 A5 C#6)
gift = bell(hz(-12), 0, 0.9, 0.3)
for k, st in enumerate([0, 4, 7, 12, 16]):
    gift += bell(hz(st), 0.06 * k, 0.7, 0.35)
write("gift.wav", render(gift, 1.0))
# combo: the flourish that ends a combo, a fast run up into a chord
combo = []
for k, st in enumerate([0, 2, 4, 7, 9, 12, 14, 16]):
    combo += bell(hz(st + 3), 0.035 * k, 0.35, 0.25)
for st in [15, 19, 22, 27]:
    combo += bell(hz(st), 0.3, 0.8, 0.3)
write("combo.wav", render(combo, 1.1))
# like: a soft short pop
write("like.wav", render(bell(hz(19), 0, 0.18, 0.5, ((1, 1.0), (1.5, 0.2))), 0.2))
