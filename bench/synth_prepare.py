"""Benchmark: synth + prepare throughput on the default profile, and prepare's peak memory at two sizes.

Prints ratios measured in this one run (these machines are noisy), not pass/fail:
  - images/s of `synth` and of `prepare`, and the wall time of both together
    (target: <= 120 s for the default profile on 2 cores);
  - peak RSS of `prepare` (AffectNet only, one process) at 1x and 4x the
    number of images: streaming means the ratio stays near 1, not near 4.

    python bench/synth_prepare.py [--params params.yaml] [--skip-throughput]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from facetransfer.config import load_section
from facetransfer.data.prepare import prepare
from facetransfer.data.synth.generate import generate

# Run in a fresh interpreter so each size gets its own peak RSS.
_PEAK_RSS = """
import resource, sys
from facetransfer.config import load_section
from facetransfer.data.prepare import prepare
after_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
cfg = load_section(sys.argv[3], "prepare")
meta = prepare(sys.argv[1], sys.argv[2], cfg, ("affectnet",), workers=1)
print(meta["affectnet"]["rows"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, after_imports)
"""


def throughput(params: Path, scratch: Path) -> dict:
    synth_cfg, prepare_cfg = load_section(params, "synth"), load_section(params, "prepare")
    start = time.perf_counter()
    counts = generate(scratch / "data", synth_cfg)
    synth_s = time.perf_counter() - start
    start = time.perf_counter()
    metas = prepare(scratch / "data", scratch / "prepared", prepare_cfg, workers=synth_cfg.workers)
    prepare_s = time.perf_counter() - start
    images, rows = sum(counts.values()), sum(m["rows"] for m in metas.values())
    return {"synth_images": images, "synth_s": synth_s, "synth_images_per_s": images / synth_s,
            "prepare_rows": rows, "prepare_s": prepare_s, "prepare_images_per_s": rows / prepare_s,
            "total_s": synth_s + prepare_s}


def peak_rss(params: Path, scratch: Path, scale: int) -> tuple[int, float, float]:
    """(rows, peak RSS MiB, RSS after imports MiB) of preparing an AffectNet-like set with `scale` x the base
    class counts."""
    cfg = load_section(params, "synth")
    base = {name: max(1, n // 8) for name, n in cfg.affectnet.train_per_class.items()}
    cfg = cfg.model_copy(update={"affectnet": cfg.affectnet.model_copy(
        update={"train_per_class": {k: v * scale for k, v in base.items()}})})
    data = scratch / f"rss{scale}"
    generate(data, cfg, ("affectnet",))
    out = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(data), str(scratch / f"prep{scale}"), str(params)],
                         check=True, capture_output=True, text=True).stdout.split()
    return int(out[0]), float(out[1]), float(out[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        if not args.skip_throughput:
            result = throughput(args.params, scratch)
            print(json.dumps({k: round(v, 1) for k, v in result.items()}, indent=2))
            print(f"synth + prepare: {result['total_s']:.0f} s (target <= 120 s on 2 cores)")
        (n1, rss1, base), (n4, rss4, _) = peak_rss(args.params, scratch, 1), peak_rss(args.params, scratch, 4)
    print(f"prepare peak RSS: {n1} images {rss1:.0f} MiB, {n4} images {rss4:.0f} MiB ({base:.0f} MiB of it "
          f"is imports); images x{n4 / n1:.1f} -> memory x{rss4 / rss1:.2f} (streaming: near 1)")


if __name__ == "__main__":
    main()
