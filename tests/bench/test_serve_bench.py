"""``paramcast bench serve``: the wrk load, the static-body and compute ceilings, the docs section."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from paramcast.bench import serve as bench


def test_missing_wrk_is_said_plainly(monkeypatch):
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="make services"):
        bench.bench_serve(devices=2, seconds=1, load="wrk", compute=False, quiet=True)


def test_compute_ceiling_bf16_rows_and_head_error():
    res = bench.compute_ceiling("cdc-mmpg", num_answers=40, method_args=["serve_dtype=bf16"], batches=(1, 4))
    assert res["layer"] == [96, 97 * 40] and [r["batch"] for r in res["rows"]] == [1, 4]
    for r in res["rows"]:
        assert r["method_ms"] > 0 and r["bare_bf16_ms"] > 0 and r["fraction_of_bare"] > 0
    err = res["head_error"]
    assert 0 < err["weight_max_abs"] <= 2 ** -7 * err["weight_max_abs_ref"]  # bf16 rounding, not another head
    assert 0 <= err["top1_changed"] < 0.05


def test_compute_ceiling_int8_uses_the_bare_int8_layer():
    res = bench.compute_ceiling("cdc-mmpg", num_answers=40, method_args=["serve_dtype=int8"], batches=(1, 4))
    for r in res["rows"]:
        assert r["bare_int8_ms"] > 0 and r["fraction_of_bare"] == round(r["bare_int8_ms"] / r["method_ms"], 3)
    err = res["head_error"]
    assert 0 < err["weight_max_abs"] <= 0.03 * err["weight_max_abs_ref"]  # int8 codes, not another head


def _spins() -> list[str]:
    """The processes running :data:`bench._SPIN` now."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if bench._SPIN.encode() in cmdline.read_bytes():
                found.append(cmdline.parent.name)
        except OSError:
            pass  # the process ended while we looked
    return found


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (make services installs it as root)")
def test_bench_serve_with_wrk_batched_and_static(tmp_path):
    docs = tmp_path / "service.md"
    docs.write_text(f"# doc\n{bench.DOCS_BEGIN}\nold table\n{bench.DOCS_END}\ntail\n")
    busy = bench._two_cpus()  # static-busy: the static ceiling beside a spin pinned to CPU 1
    modes = "batched,static" + ",static-busy" * busy
    res = bench.bench_serve(devices=3, seconds=1, warmup_s=0, num_answers=8, modes=modes, threads=1,
                            encode_threads=2, compute=False, method_arg=["hidden=8", "head_in=4"], out=tmp_path / "out", docs=docs,
                            quiet=True)
    assert list(res["modes"]) == modes.split(",")
    for mode in modes.split(","):
        row = res["modes"][mode]
        assert row["load"] == "wrk" and row["errors"] == 0 and row["requests_ok"] > 0
        assert row["verified_answers"] == 3 and row["cpu_cores"]["load"] >= 0
    # the adapt handler's stages, from the server's /metrics: all three for an adaptation, read_check alone for a
    # static answer; together they fit in the whole request
    b, st = res["modes"]["batched"]["server_ms"], res["modes"]["static"]["server_ms"]
    assert all(b[k] > 0 for k in ("read_check", "batch", "encode", "generate", "request"))
    assert b["read_check"] + b["batch"] + b["encode"] <= b["request"]
    assert st["read_check"] > 0 and st["batch"] is st["encode"] is st["generate"] is None
    # the static body is the same size as a generated answer
    assert abs(res["modes"]["static"]["down_bytes_per_answer"] - res["modes"]["batched"]["down_bytes_per_answer"]) < 64
    assert res["fraction_of_static"] > 0 and res["config"]["load_tools"]["wrk"].startswith("wrk")
    assert (res.get("fraction_of_static_busy", 0) > 0) == busy
    assert not _spins()  # the spin beside static-busy is gone with its mode
    text = docs.read_text()
    assert "old table" not in text and "| batched | wrk |" in text and text.endswith("tail\n")
    assert "| mode | request | read_check | batch | encode | generate |" in text
    assert res["config"]["encode_threads"] == 2 and "2 encoding threads" in text  # the server started with it
    assert (tmp_path / "out" / "serve.json").exists()


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="static-busy"):
        bench.bench_serve(modes="batched,idle", compute=False, quiet=True)


def test_engine_names_become_serve_flags(tmp_path):
    assert bench._engine_args("uvicorn", tmp_path) == []
    flags = bench._engine_args("ray-sb-r2", tmp_path)
    assert flags[flags.index("--ray-batching") + 1] == "serve" and flags[flags.index("--replicas") + 1] == "2"
    flags = bench._engine_args("ray-mo5", tmp_path)
    assert flags[flags.index("--ray-batching") + 1] == "replica" and flags[flags.index("--limit-concurrency") + 1] == "5"
    with pytest.raises(ValueError, match="unknown option"):
        bench._engine_args("ray-sbx", tmp_path)


def test_cpu_interference_is_recorded_and_rendered(monkeypatch):
    """The probe runs pinned to CPU 0 against a spinning neighbour on CPU 1, restores the affinity, and the
    report prints the factor (the probe's timings are replaced: a test does not time)."""
    if bench.sys.platform != "linux" or not {0, 1} <= bench.os.sched_getaffinity(0):
        pytest.skip("needs CPUs 0 and 1")
    before = bench.os.sched_getaffinity(0)
    seen, times = [], iter([1.0, 2.0, 1.0, 2.2, 1.0, 1.8])
    monkeypatch.setattr(bench, "python_probe", lambda reps=3: (seen.append(bench.os.sched_getaffinity(0)), next(times))[1])
    res = bench.cpu_interference(trials=3)
    assert res == {"trials": 3, "alone_s": 1.0, "neighbour_busy_s": 2.0, "slowdown": 2.0}
    assert seen == [{0}] * 6 and bench.os.sched_getaffinity(0) == before
    text = bench.to_markdown({"config": {"devices": 1, "seconds": 1, "method": "m", "num_answers": 8, "quant": "fp32",
                                         "max_batch": 1, "max_wait_ms": 0, "threads": 1, "cpus": 2},
                              "modes": {}, "cpu_interference": res})
    assert "**2.0x** slower" in text


def test_bounds_add_the_run_s_own_parts():
    """static 500 req/s = 2 ms a request; the cheapest head within max batch 8 is 0.5 ms (batch 8; batch 32 is
    cheaper but beyond the max batch), encoding 0.5 ms: serial 1 / 3 ms, naive 1 / (2 + 4 + 0.5) ms."""
    rows = [{"batch": 1, "method_ms": 4.0, "method_ms_per_head": 4.0}, {"batch": 8, "method_ms": 4.0, "method_ms_per_head": 0.5},
            {"batch": 32, "method_ms": 3.2, "method_ms_per_head": 0.1}]
    result = {"config": {"max_batch": 8, "quant": "fp32"},
              "modes": {"static": {"req_per_s": 500.0}, "batched": {"req_per_s": 100.0}},
              "compute": {"rows": rows, "encode": {"quant": "fp32", "encode_ms": 0.5}}}
    b = bench._bounds(result)
    assert b["head_batch"] == 8 and b["serial_req_per_s"] == pytest.approx(333.3, abs=0.1)
    assert b["serial_fraction_of_static"] == pytest.approx(0.667, abs=1e-3)
    assert b["all_cpus_req_per_s"] == 500.0  # 1 / (0.5 + 0.5) ms = 1,000 > the HTTP side's 500
    assert b["naive_serial_req_per_s"] == pytest.approx(153.8, abs=0.1) and b["batched_over_naive"] == pytest.approx(2.17, abs=0.01)
    assert b["batched_fraction_of_serial"] == pytest.approx(0.3, abs=1e-3)
    result["modes"]["static-busy"] = {"req_per_s": 400.0}
    assert bench._bounds(result)["all_cpus_req_per_s"] == 400.0
    # the CPU budget: 1 CPU's 1,000 ms a second over the CPU an adapted request needs: server + load CPU per static
    # request (0.5 cores / 500 req/s = 1 ms) + 1 ms of generation and encoding = 500 req/s, above static-busy's 400
    result["modes"]["static"]["cpu_cores"] = {"server": 0.45, "load": 0.05}
    result["config"]["cpus"] = 1
    assert bench._bounds(result)["cpu_budget_req_per_s"] == 500.0 and bench._bounds(result)["all_cpus_req_per_s"] == 400.0
    result["modes"]["static"]["cpu_cores"] = {"server": 0.9, "load": 0.1}  # the budget is now the least: 333.3
    b = bench._bounds(result)
    assert b["cpu_budget_req_per_s"] == pytest.approx(333.3, abs=0.1) and b["all_cpus_req_per_s"] == b["cpu_budget_req_per_s"]
    del result["modes"]["static-busy"], result["modes"]["static"]["cpu_cores"], result["config"]["cpus"]
    assert bench._bounds({**result, "compute": {}}) is None  # --no-compute: nothing to add up
    # the compute block encodes fp32: no bound for another downlink
    assert bench._bounds({**result, "config": {"max_batch": 8, "quant": "int8"}}) is None
    config = {"devices": 1, "seconds": 1, "method": "m", "num_answers": 8, "quant": "fp32", "max_batch": 8,
              "max_wait_ms": 0, "threads": 1, "cpus": 2}
    text = bench.to_markdown({"config": config, "modes": {}, "bounds": bench._bounds(result)})
    assert "**333.3 req/s = 67% of static**" in text and "at most **2.17x**" in text and "30% of the serial bound" in text


def test_servers_under_test_do_not_inherit_paramcast_variables(monkeypatch):
    monkeypatch.setenv("PARAMCAST_MAX_WAIT_MS", "9")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    env, ignored = bench._server_env()
    assert "PARAMCAST_MAX_WAIT_MS" in ignored and "PARAMCAST_MAX_WAIT_MS" not in env
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and not any(k.startswith("PARAMCAST_") for k in env)

