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
