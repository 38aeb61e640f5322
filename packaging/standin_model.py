"""A stand-in for the embedded Sprint-Shapes model while it trains: the project's tiny random-weights
pipeline (`devtools.builders.tiny_pipeline`) at Sprint-Shapes' 64 x 64, saved in diffusers layout.
Its images are noise; it lets the package be built and smoke-tested before the real model lands.

    python packaging/standin_model.py /tmp/sprint-standin
    MODEL=/tmp/sprint-standin packaging/linux/build.sh
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sprint_desktop.devtools.builders import save_pipeline, tiny_pipeline  # noqa: E402
from sprint_desktop.formats.model_folder import MODEL_SETTINGS_FILE  # noqa: E402

SIDE = 64  # Sprint-Shapes' image size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write (replaced if it holds a stand-in)")
    args = parser.parse_args()
    pipe = tiny_pipeline(seed=0)
    vae_scale = 2 ** (len(pipe.vae.config.encoder_block_out_channels) - 1)
    pipe.transformer.register_to_config(
        sample_size=SIDE // vae_scale
    )  # default size = sample_size * vae scale
    save_pipeline(pipe, args.out)
    (args.out / MODEL_SETTINGS_FILE).write_text(json.dumps({"name": "sprint-shapes (stand-in)"}, indent=2))
    print(f"stand-in model ({SIDE}x{SIDE}, random weights) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
