"""Stage the embedded model for the packaged app: copy MODEL to OUT (the bundle's
models/sprint-shapes) and ship its ONNX export inside it (OUT/onnx/), made here with PyTorch because
the bundle has none. Used by every platform's build before PyInstaller.

    python packaging/stage_model.py MODEL OUT [--precision fp32]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sprint_desktop.export.cache import find_export, is_complete  # noqa: E402
from sprint_desktop.export.onnx_export import export_model  # noqa: E402

SHIPPED = "onnx"  # <model>/onnx/, where export.cache.find_export looks first
# The fast model fingerprint an export is checked against includes the weights' modification times.
# Pin them to one old instant: PyInstaller's copy (see the spec), tar and dpkg keep mtimes, and a
# reproducible build's SOURCE_DATE_EPOCH clamp leaves times older than itself alone. Not needed for
# the export to be accepted (its manifest also records the weights' content, checked when the times
# differ, e.g. after a copy that loses them), but it keeps launches on the fast check, with no hashing.
PINNED_MTIME = int(os.environ.get("SOURCE_DATE_EPOCH", "1577836800"))  # default 2020-01-01


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--precision", choices=["fp32", "fp16"], default="fp32", help="fp32 suits CPUs")
    args = parser.parse_args()
    # torch.onnx's tracer warnings are expected here; the exporter checks every graph against PyTorch.
    warnings.simplefilter("ignore")
    if args.out.exists():
        shutil.rmtree(args.out)
    shutil.copytree(args.model, args.out, ignore=shutil.ignore_patterns(SHIPPED, "__pycache__", ".*"))
    for path in sorted(args.out.rglob("*"), reverse=True):  # files before their folders
        os.utime(path, (PINNED_MTIME, PINNED_MTIME), follow_symlinks=False)
    with tempfile.TemporaryDirectory(prefix="sprint-stage-") as tmp:
        cache = Path(tmp) / "cache"

        def progress(component: str, index: int, total: int) -> None:
            if component != "done":
                print(f"  exporting {component} ({index + 1} of {total})", flush=True)

        export = export_model(args.out, precision=args.precision, cache_root=cache, progress=progress)
        shutil.copytree(export, args.out / SHIPPED)
        empty = Path(tmp) / "no-cache"
        found = find_export(args.out, args.precision, root=empty)
    shipped = args.out / SHIPPED
    if found != shipped or not is_complete(shipped, verify_checksums=True):
        print(
            f"stage_model: the export in {shipped} is not accepted by find_export ({found})", file=sys.stderr
        )
        return 1
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"staged {args.model} -> {args.out} with its {args.precision} ONNX export ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
