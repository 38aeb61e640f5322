"""The prepared GPU rows of issue #12 (`devtools.bound_bench.bound_graph_rows`), run as a dry run on
the CPU with the reduced real architecture, so the code the GPU run calls is known to work."""

from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime")


@pytest.mark.slow
def test_bound_graph_rows_dry_run_on_the_cpu(tmp_path):
    from sprint_desktop.devtools.bound_bench import bound_graph_rows

    rows = bound_graph_rows(
        "reduced",
        tmp_path,
        providers=("cpu", "tensorrt-rtx"),
        size=16,
        steps=(1, 2),
        repeats=1,
        precision="fp32",
        device="cpu",
    )
    assert rows["binding"]["seconds"] > 0 and rows["binding"]["peak_rss_bytes"] > 0
    assert set(rows["pytorch"]["rows"]) == {"1", "2"}
    cpu = rows["cpu"]
    assert cpu["device"] == "cpu"
    for n in ("1", "2"):
        assert cpu["rows"][n]["max_pixel_diff_vs_pytorch"] <= 2
        assert cpu["rows"][n]["stages_s"]["denoise_ms"] > 0
    assert "TensorRT-RTX is not available" in rows["tensorrt-rtx"]["error"]  # no plugin here: recorded
