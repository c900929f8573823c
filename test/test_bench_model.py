"""`dp_ros bench model` prints a table and ends with one JSON line of figures."""
import json

from dp_ros.cli import main


def test_bench_model_prints_table_and_json(capsys):
    assert main(["bench", "model", "--config", "sim_small", "--denoiser", "all",
                 "--device", "cpu", "--chunks", "3", "--warmup", "1", "--warmup-seconds", "0"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("sim_small   unet") for line in out)
    data = json.loads(out[-1])
    assert data["bench"] == "model"
    assert [(r["config"], r["denoiser"]) for r in data["results"]] == [("sim_small", "unet"), ("sim_small", "transformer")]
    r = data["results"][0]
    assert r["params_total"] == r["params_encoder"] + r["params_denoiser"]
    assert 0 < r["encoder"]["p50_ms"] <= r["encoder"]["p99_ms"]
    assert r["chunk"]["p50_ms"] > r["denoise_step"]["p50_ms"]


def test_bench_backends_prints_table_json_and_parity(capsys):
    assert main(["bench", "backends", "--config", "sim_small", "--device", "cpu", "--chunks", "3",
                 "--warmup", "1", "--backends", "onnxruntime,pytorch,tensorrt"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    data = json.loads(out[-1])
    rows = {r["backend"]: r for r in data["results"]}
    assert set(rows) == {"onnxruntime", "pytorch"}
    assert "tensorrt" in data["skipped"] and any(line.startswith("skipped tensorrt") for line in out)
    assert rows["pytorch"]["speedup_vs_pytorch_fp32"] == 1.0
    assert rows["onnxruntime"]["max_abs_diff_vs_pytorch"] < 1e-4
    for r in rows.values():
        assert r["chunk_p50_ms"] <= r["chunk_p99_ms"] and r["ddim_steps"] == 10
