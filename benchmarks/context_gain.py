"""Would context modelling pay in the 1.0 layout? Exact bit counts on Kodak, model tables included.

    python -m benchmarks.context_gain                  # 24 Kodak images at quality 45, 62, 75
    python -m benchmarks.context_gain --quick          # 4 images at quality 62
    python -m benchmarks.context_gain --quality 62 --images kodim01 kodim23
    python -m benchmarks.context_gain --recode         # what the 1.2 writer makes of the same encodes
    python -m benchmarks.context_gain --small          # the same on 224x224 Flickr8k crops

The 1.0 layout (codec/bitstream.py, codec/entropy.py) codes each attribute stream (log a, log b,
shear, Y, Cb, Cr) with one static per-image histogram, directly or as differences in Morton order,
and pays for the histogram in the QUNT section. Conditional entropies such as H(log b | log a >> 2)
ignore that price, which is the whole question for per-image tables: every context needs its own
histogram. This script measures, per image, the *total* bits (model header + coded data, exactly as
``entropy._fit`` prices a stream: best shift and best count precision) of each attribute under:

* ``now``: what the file spends today (direct or delta, whichever is cheaper: ``entropy.fit_attribute``);
* ``transform``: the free decorrelating transforms, no extra tables: the residual of a linear
  prediction from one earlier attribute of the same Gaussian (e.g. log b - log a), direct or in
  Morton-order differences (one small parameter block: slope in 1/32 steps, integer offset);
* ``context``: 2, 4 or 8 context buckets (quantile thresholds, which travel in the file) of one
  earlier piece of information about the same Gaussian: an earlier attribute's value, the bit length
  of its Morton gap (positions are decoded first), or the size of an earlier attribute's step from
  the previous Gaussian in Morton order; one histogram per bucket (each at its own best shift and
  count precision) for the direct, the delta or the best transformed symbols. All of these decode
  column by column without a per-symbol loop (contexts of a column come from columns decoded before
  it). Contexts from the previous Gaussian's value of the *same* attribute would need a sequential
  decoder and are not tried.

Per image and rate it prints the file size and the net change of the whole file (attribute bits saved
by the best choice per stream, minus 8 bits per stream to signal the choice) as a percentage.
``--recode`` re-writes every cached encode with the current writer (``bitstream.write``: 1.2 where
its predictions make the file smaller) and reports the real size change per image at equal
Gaussians (both files decode to the same Gaussians, checked), and the BD-rate of the new against the
old mean curve (mean bpp and mean PSNR per quality; pchip, as benchmarks.rd).

``--small``: 224x224 centre crops of Flickr8k files 250.. (benchmarks.small_data) at 400 / 900 / 1600
Gaussians: the file ``encode`` keeps (``formats.write_best``: the 1.1 file, or the 1.0 one without
predictions where smaller), and the 1.0-layout file without and with predictions (1.0 / 1.2; an
encode with metadata writes the latter), all of the same Gaussians. CIFAR-size
encodes (at most 96 Gaussians) are below ``bitstream.PREDICT_MIN_GAUSSIANS`` and unchanged.

Encodes (effort 4, the defaults) are cached in ``--cache`` (they take 10-30 s each); the entropy
measurement itself takes about a second per image.
"""
from __future__ import annotations

import argparse
import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from splatcodec.codec import bitstream, entropy
from splatcodec.codec.container import Limits
from splatcodec.codec.quantize import Quantized

from .common import KODAK_DIR, load_rgb

ATTRS = ("log_a", "log_b", "shear", "Y", "Cb", "Cr")
#: Bits to say which scheme a stream uses (flag + context source + bucket count + base stream).
SCHEME_BITS = 8
#: Linear predictor parameters: slope in 1/32 steps within [-4, 4] (9 bits) plus an offset (bits+1).
SLOPE_STEPS = 32


# ------------------------------------------------------------------------------------ stream pricing
def price(values: np.ndarray, bits: int) -> float:
    """Bits of one stream coded with one static model, header included: the same number as
    ``entropy._fit(values, bits)[0]``, computed from one histogram (this script prices thousands)."""
    values = np.asarray(values, dtype=np.int64)
    if values.size == 0:
        return 0.0
    base = np.bincount(values, minlength=1 << bits).astype(np.float64)
    best = np.inf
    for shift in range(max(0, bits - 12), bits + 1):
        hist = base.reshape(-1, 1 << shift).sum(axis=1)
        last = int(np.nonzero(hist)[0][-1])
        hist = hist[:last + 1]
        used = hist > 0
        for scale in entropy._COUNT_SCALES:
            counts = entropy._quantized_counts(hist, scale)
            p = counts / counts.sum()
            data = -np.sum(hist[used] * np.log2(p[used])) + values.size * shift
            header = 18 + entropy._gamma_bits(counts)  # counts up to the last used bucket
            best = min(best, float(data + header))
            if hist.max() <= scale:
                break
    return best


def self_check() -> None:
    """:func:`price` agrees with the codec's own pricing on a few random streams."""
    rng = np.random.default_rng(0)
    for bits, n in ((7, 3000), (6, 200), (8, 20000)):
        v = np.clip(rng.normal(1 << (bits - 1), 1 << (bits - 3), n), 0, (1 << bits) - 1).astype(np.int64)
        ours, theirs = price(v, bits), entropy._fit(v, bits)[0]
        assert abs(ours - theirs) < 1e-6 * theirs, (bits, ours, theirs)


# ---------------------------------------------------------------------------------- symbol streams
@dataclass
class Columns:
    """One image's quantized Gaussians, in file order, with what a column decoder knows."""

    q: Quantized
    bits: list[int]
    group: np.ndarray      # group index of each Gaussian
    first: np.ndarray      # True where a Gaussian starts its group (deltas restart there)
    gap_len: np.ndarray    # bit length of the Morton gap to the previous Gaussian


def columns_of(q: Quantized) -> Columns:
    bounds = np.cumsum([0] + list(q.group_sizes))
    group = np.repeat(np.arange(len(q.group_sizes)), q.group_sizes)
    first = np.zeros(q.num_gaussians, bool)
    first[bounds[:-1]] = True
    gaps = np.concatenate([bitstream._gaps(q, a, b) for a, b in zip(bounds[:-1], bounds[1:])])
    return Columns(q, q.attribute_bits(), group, first, bitstream._bit_length(gaps))


def deltas(values: np.ndarray, bits: int, first: np.ndarray) -> np.ndarray:
    """entropy.to_deltas applied per group (the first of a group differs from 2**(bits-1))."""
    prev = np.concatenate([[0], values[:-1]])
    prev[first] = 1 << (bits - 1)
    return values - prev + ((1 << bits) - 1)


def residual(c: Columns, k: int, sources: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """Residual of attribute ``k`` after a least-squares linear prediction from earlier attributes
    ``sources`` (slopes rounded to 1/SLOPE_STEPS within [-4, 4], prediction rounded and clipped to the
    value range), offset into ``[0, 2**(bits+1))``; and its parameter cost in bits."""
    x = c.q.qattr[:, list(sources)].astype(np.float64)
    y = c.q.qattr[:, k].astype(np.float64)
    bk = c.bits[k]
    xc = x - x.mean(axis=0)
    slopes = np.linalg.lstsq(xc, y - y.mean(), rcond=None)[0] if xc.any() else np.zeros(len(sources))
    slopes = np.clip(np.round(slopes * SLOPE_STEPS), -4 * SLOPE_STEPS, 4 * SLOPE_STEPS) / SLOPE_STEPS
    offset = np.round(np.mean(y - x @ slopes))
    pred = np.clip(np.floor(x @ slopes + offset + 0.5), 0, (1 << bk) - 1).astype(np.int64)
    return c.q.qattr[:, k] - pred + ((1 << bk) - 1), 9 * len(sources) + bk + 1


def buckets(ctx: np.ndarray, m: int) -> tuple[np.ndarray, int]:
    """Quantile buckets of a context variable: bucket index per Gaussian and the number of buckets."""
    thresholds = np.unique(np.quantile(ctx, np.arange(1, m) / m, method="higher"))
    thresholds = thresholds[thresholds > ctx.min()]
    return np.searchsorted(thresholds, ctx, side="right"), len(thresholds) + 1


def context_sources(c: Columns, k: int) -> dict[str, tuple[np.ndarray, int]]:
    """Context variables a column decoder has when it reaches attribute ``k``: name -> (values, bits)."""
    out = {"gap_len": (c.gap_len, 6)}
    for j in range(k):
        v = c.q.qattr[:, j]
        out[ATTRS[j]] = (v, c.bits[j])
        step = np.abs(np.diff(v, prepend=v[:1]))
        step[c.first] = 0
        out[f"|d {ATTRS[j]}|"] = (step, c.bits[j])
    return out


@dataclass
class Choice:
    bits: float
    label: str


def best_for(c: Columns, k: int, counts: list[int] = (2, 4, 8)) -> dict[str, Choice]:
    """Cheapest coding of attribute ``k`` in each family (``now``, ``transform``, ``context``)."""
    bk = c.bits[k]
    v = c.q.qattr[:, k]
    bases = {"direct": (v, bk, 0), "delta": (deltas(v, bk, c.first), bk + 1, 0)}
    now = min((Choice(price(s, b), name) for name, (s, b, _) in bases.items()), key=lambda ch: ch.bits)
    transforms = dict(bases)
    for sources in [(j,) for j in range(k)] + list(itertools.combinations(range(k), 2)):
        r, param_bits = residual(c, k, sources)
        label = ",".join(ATTRS[j] for j in sources)
        transforms[f"res({label})"] = (r, bk + 1, param_bits)
        transforms[f"d res({label})"] = (deltas(r, bk + 1, c.first), bk + 2, param_bits)
    priced = {name: price(s, b) + extra for name, (s, b, extra) in transforms.items()}
    t_name = min(priced, key=priced.get)
    transform = Choice(priced[t_name] + (SCHEME_BITS if t_name not in bases else 0), t_name)
    best = transform if transform.bits < now.bits else now
    # Context models on the direct, delta and best transformed symbols.
    for name in dict.fromkeys(["direct", "delta", t_name]):
        symbols, sbits, extra = transforms[name]
        for src, (ctx, cbits) in context_sources(c, k).items():
            for m in counts:
                idx, used = buckets(ctx, m)
                if used < 2:
                    continue
                total = extra + SCHEME_BITS + (used - 1) * cbits
                total += sum(price(symbols[idx == b], sbits) for b in range(used))
                if total < best.bits:
                    best = Choice(total, f"{name} | {src} ({used})")
    return {"now": now, "transform": transform, "context": best}


# ------------------------------------------------------------------------------------------ driver
def encoded(name: str, quality: float, cache: Path, threads: int) -> bytes:
    path = cache / f"{name}_q{quality:g}.gsplat"
    if not path.is_file():
        import splatcodec

        img = load_rgb(KODAK_DIR / f"{name}.png")
        t0 = time.perf_counter()
        data = splatcodec.encode(img, quality=quality, threads=threads)
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        print(f"  (encoded {name} q{quality:g} in {time.perf_counter() - t0:.0f} s)", flush=True)
    return path.read_bytes()


def measure(data: bytes) -> tuple[int, int, dict[str, list[Choice]]]:
    parsed = bitstream.parse(data, Limits())
    if not isinstance(parsed, bitstream.Parsed):
        raise SystemExit("not a 1.0 file (small images use the 1.1 layout, which has its own contexts)")
    q = bitstream.read(parsed)
    c = columns_of(q)
    per_attr = [best_for(c, k) for k in range(len(c.bits))]
    return len(data), q.num_gaussians, {fam: [a[fam] for a in per_attr] for fam in ("now", "transform", "context")}


def recode(names: list[str], qualities: list[float], cache: Path, threads: int) -> None:
    """Real file sizes of the cached (1.0) encodes re-written by the current writer, and the BD-rate."""
    import bjontegaard

    import splatcodec
    from splatcodec.metrics import psnr

    print(f"{'image':8} {'q':>3} {'N':>6} {'1.0 bytes':>9} {'now':>7} {'change':>8}  predicted streams")
    curves: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
    for quality in qualities:
        old_bpp, new_bpp, dist, changes = [], [], [], []
        for name in names:
            q = bitstream.read(bitstream.parse(encoded(name, quality, cache, threads), Limits()))
            data, _ = bitstream.write(q, predict=False)  # the 1.0 file (the cache may hold either)
            new, _ = bitstream.write(q)
            parsed = bitstream.parse(new, Limits())
            back = bitstream.read(parsed)
            assert (back.qattr == q.qattr).all() and (back.qx == q.qx).all() and (back.qy == q.qy).all()
            img = load_rgb(KODAK_DIR / f"{name}.png")
            pixels = img.shape[0] * img.shape[1]
            old_bpp.append(8 * len(data) / pixels)
            new_bpp.append(8 * len(new) / pixels)
            dist.append(psnr(img, splatcodec.decode(new)))
            changes.append(len(new) / len(data) - 1)
            preds = ", ".join(f"{ATTRS[k]}<-{'+'.join(ATTRS[j] for j in p.sources)}"
                              for k, p in enumerate(parsed.predictors) if p is not None)
            print(f"{name:8} {quality:3g} {q.num_gaussians:6d} {len(data):9d} {len(new):7d} "
                  f"{100 * changes[-1]:+7.2f}%  {preds or '-'}", flush=True)
        print(f"{'mean':8} {quality:3g} {'':6} {'':9} {'':7} {100 * np.mean(changes):+7.2f}%  "
              f"(largest {100 * max(changes):+.2f}%, smallest {100 * min(changes):+.2f}%)")
        curves["old"].append((float(np.mean(old_bpp)), float(np.mean(dist))))
        curves["new"].append((float(np.mean(new_bpp)), float(np.mean(dist))))
    if len(qualities) >= 2:
        (ro, do), (rn, dn) = (np.array(sorted(curves[k])).T for k in ("old", "new"))
        bd = bjontegaard.bd_rate(ro, do, rn, dn, method="pchip", require_matching_points=False)
        print(f"BD-rate, new against old mean curve over quality {', '.join(f'{v:g}' for v in qualities)}: {bd:+.2f} %")


def small(count: int, counts: tuple[int, ...], cache: Path, threads: int) -> None:
    """Small images: 1.2 against 1.0 where the 1.0 layout is written (file kept by encode, and 1.0 alone)."""
    import splatcodec
    from splatcodec.codec import formats

    from .small_data import FLICKR_TEST, center_crop, flickr_paths

    print(f"{'crop':14} {'N':>5} {'encode':>6} {'1.0':>6} {'1.2':>6} {'1.2 vs 1.0':>10}")
    changes = []
    for path in flickr_paths(range(FLICKR_TEST.start, FLICKR_TEST.start + count)):
        for n in counts:
            f = cache / f"{path.stem}_n{n}.gsplat"
            if not f.is_file():
                cache.mkdir(parents=True, exist_ok=True)
                f.write_bytes(splatcodec.encode(center_crop(path), num_gaussians=n, threads=threads))
            q = bitstream.read(bitstream.parse(f.read_bytes(), Limits()))
            kept, _ = formats.write_best(q, None)
            plain, _ = bitstream.write(q, predict=False)
            pred, _ = bitstream.write(q)
            changes.append(len(pred) / len(plain) - 1)
            print(f"{path.stem[:14]:14} {q.num_gaussians:5d} {len(kept):6d} {len(plain):6d} {len(pred):6d} "
                  f"{100 * changes[-1]:+9.2f}%", flush=True)
    print(f"1.0-layout files: mean {100 * np.mean(changes):+.2f} %, largest {100 * max(changes):+.2f} %")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="4 images at quality 62")
    ap.add_argument("--quality", type=float, nargs="+", default=[45, 62, 75])
    ap.add_argument("--images", nargs="+", default=[f"kodim{i:02d}" for i in range(1, 25)])
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "splatcodec_context_gain")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--verbose", action="store_true", help="print each stream's best scheme")
    ap.add_argument("--recode", action="store_true", help="real sizes of the current writer's files instead")
    ap.add_argument("--small", type=int, default=0, metavar="K", help="K Flickr8k crops instead of Kodak")
    args = ap.parse_args(argv)
    if args.quick:
        args.images, args.quality = ["kodim01", "kodim05", "kodim15", "kodim23"], [62]
    if args.small:
        return small(args.small, (400, 900, 1600), args.cache, args.threads)
    if args.recode:
        return recode(args.images, args.quality, args.cache, args.threads)
    self_check()
    print("net change of the file size (negative = smaller); 'now' = attribute bits today")
    print(f"{'image':8} {'q':>3} {'N':>6} {'bytes':>7} {'now b/G':>8} {'transform':>10} {'context':>9}")
    for quality in args.quality:
        rows = []
        for name in args.images:
            size, n, fam = measure(encoded(name, quality, args.cache, args.threads))
            now = sum(ch.bits for ch in fam["now"])
            t = sum(ch.bits for ch in fam["transform"]) - now
            x = sum(ch.bits for ch in fam["context"]) - now
            rows.append((t / (8 * size), x / (8 * size)))
            print(f"{name:8} {quality:3g} {n:6d} {size:7d} {now / n:8.2f} {100 * t / (8 * size):+9.2f}% "
                  f"{100 * x / (8 * size):+8.2f}%", flush=True)
            if args.verbose:
                for k, a in enumerate(ATTRS):
                    base, ctx = fam["now"][k], fam["context"][k]
                    print(f"    {a:6} now {base.bits / n:5.2f} b/G ({base.label}); best {ctx.bits / n:5.2f} "
                          f"({ctx.label}); transform {fam['transform'][k].bits / n:5.2f} ({fam['transform'][k].label})")
        r = np.array(rows)
        print(f"{'mean':8} {quality:3g} {'':6} {'':7} {'':8} {100 * r[:, 0].mean():+9.2f}% {100 * r[:, 1].mean():+8.2f}%"
              f"   (worst image {100 * r[:, 0].max():+.2f}% / {100 * r[:, 1].max():+.2f}%)")


if __name__ == "__main__":
    main()
