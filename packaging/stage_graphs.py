"""Stage weight-free ONNX graph sets for the bundle (build time, needs PyTorch): the catalog's real
models' architectures built here with placeholder weights (`graph_only.export_arch_graphs`), so the
installed app binds a downloaded checkpoint's safetensors to them with no PyTorch (issue #12).

    python packaging/stage_graphs.py OUT [--arch sana-sprint-0.6b ...] [--precision fp16 ...]
    python packaging/stage_graphs.py OUT --reduced MODEL    # smoke test: the reduced real architecture

Graphs shared by several models (the Gemma-2 text encoder and the DC-AE of 0.6B and 1.6B) are
exported once. With ``--reduced``, OUT gets the graphs of a reduced real architecture (checkpoint A,
seed 0) and MODEL a checkpoint B of it (seed 10) to download from a loopback hub and bind.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_ARCHS = ("sana-sprint-0.6b", "sana-sprint-1.6b")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--arch", action="append", help=f"default: {' '.join(DEFAULT_ARCHS)}")
    parser.add_argument(
        "--precision", action="append", choices=["fp16", "fp32"], help="default: fp16 and fp32"
    )
    parser.add_argument(
        "--reduced", type=Path, metavar="MODEL", help="stage the reduced architecture instead"
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # torch.onnx's tracer warnings are expected
    from sprint_desktop.export.graph_only import export_arch_graphs, export_model_graphs

    args.out.mkdir(parents=True, exist_ok=True)
    if args.reduced:
        import tempfile

        from sprint_desktop.export.reduced import save_reduced

        with tempfile.TemporaryDirectory() as tmp:
            a = save_reduced(Path(tmp) / args.reduced.name, seed=0)
            export_model_graphs(a, args.out, precision="fp32")
        save_reduced(args.reduced, seed=10)
        print(f"reduced model in {args.reduced}, its graphs in {args.out}")
        return 0
    for arch in args.arch or DEFAULT_ARCHS:
        for precision in args.precision or ("fp16", "fp32"):
            start = time.perf_counter()

            def progress(component: str, i: int, total: int, label: str = f"{arch} {precision}") -> None:
                if component != "done":
                    print(f"  {label}: {component} ({i + 1} of {total})", flush=True)

            graphs = export_arch_graphs(arch, args.out, precision=precision, progress=progress)
            size = sum(g.stat().st_size for g in graphs)
            print(
                f"{arch} {precision}: {len(graphs)} graphs, {size / 2**20:.1f} MiB ({time.perf_counter() - start:.0f} s)"
            )
    total = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file())
    print(f"graph library {args.out}: {total / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
