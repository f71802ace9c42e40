"""Recordings with their transcripts and a manifest in the workbench: uploaded together or ingested from a
folder, they are one call each, carry the manifest's agent and team (so the role scoping applies to them)
and keep the manifest's other columns."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

pytest.importorskip("soundfile")

import audio_synth as synth  # noqa: E402
import call_synth as cs  # noqa: E402
from conftest import World  # noqa: E402

pytestmark = pytest.mark.skipif(not synth.have_espeak(), reason="espeak-ng is not installed")

MANIFEST = ("call_id,recording,transcript,工号,坐席姓名,班组,呼叫方向,agent_channel,队列\n"
            "{cid},c1.wav,c1.json,A1,王芳,一组,呼入,left,宽带\n")


@pytest.fixture(scope="module")
def call_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("call")
    g = cs.build(cs.Spec(agent_db=-14.0, customer_db=-27.0, turns=3), "ignored-id")
    cs.write_call(str(folder), "c1", cs.degrade(g.samples), g.transcript, subtype="ULAW")
    return folder


def test_upload_of_recording_transcript_and_manifest_is_one_scoped_call(world: World, call_files: Path) -> None:
    cid = f"REC-{world.backend}"
    files = [("files", ("c1.wav", (call_files / "c1.wav").read_bytes())),
             ("files", ("c1.json", (call_files / "c1.json").read_bytes())),
             ("files", ("manifest.csv", MANIFEST.format(cid=cid).encode("utf-8")))]
    r = world.post("qa", "/api/uploads", files=files)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["stored"] == 1 and out["errors"] == 0, out
    (res,) = out["results"]
    assert res["call_id"] == cid and res["source"] == "c1.json + c1.wav"
    d = world.get("qa", f"/api/calls/{res['id']}").json()
    assert d["agent"] == {"code": "A1", "name": "王芳"} and d["team"]["name"] == "一组"
    conv = d["conversation"]
    assert conv["metrics"]["attributes"] == {"队列": "宽带"} and conv["direction"] == "inbound"
    assert all(u["attrs"]["loudness_dbfs"] is not None for u in conv["utterances"])
    assert "VOC003" in {f["rule"] for f in d["findings"]}
    # role scoping: the agent of the call sees it, another agent gets the same 404 as a missing call
    assert world.get("a1", f"/api/calls/{res['id']}").status_code == 200
    assert world.get("a2", f"/api/calls/{res['id']}").status_code == 404
    # the call page: the player, both channels' loudness envelope and the transcript on one timeline
    from fastapi.testclient import TestClient

    with TestClient(world.client.app) as browser:
        world.browser_login(browser, "qa1")
        page = browser.get(f"/calls/{res['id']}").text
        upload_page = browser.get("/upload").text
        queue = browser.get("/reviews").text
    # in the review queue a voice rule's measurement is evidence (证据), not words the agent said (原话)
    assert '<span class="lbl">证据</span>「坐席音量' in queue and '<span class="lbl">原话</span>「坐席音量' not in queue
    # the upload page says that a recording and its transcript are one call and what a manifest adds
    assert "同名的录音和转写" in upload_page and "manifest.csv" in upload_page
    assert f"/calls/{res['id']}/audio" in page and page.count('class="kq-env"') == 2
    assert "坐席音量包络" in page and "客户音量包络" in page


def test_upload_of_a_pair_without_manifest_and_a_bad_row(world: World, call_files: Path) -> None:
    cid = f"BAD-{world.backend}"
    bad = MANIFEST.format(cid=cid).replace("c1.wav", "c9.wav")
    files = [("files", ("c1.wav", (call_files / "c1.wav").read_bytes())),
             ("files", ("c1.json", (call_files / "c1.json").read_bytes())),
             ("files", ("manifest.csv", bad.encode("utf-8")))]
    out = world.post("qa", "/api/uploads", files=files).json()
    errors = [o for o in out["results"] if o["status"] == "error"]
    assert [(e["source"], e["error"]) for e in errors] == [("manifest.csv", f"第 2 行（{cid}）: 录音文件不存在：c9.wav")]
    # the recording and transcript the bad row named still pair by their stem: one call, its own id
    assert out["stored"] + out["unchanged"] == 1


def test_ingest_a_folder_of_recordings_transcripts_and_a_manifest(tmp_path: Path, call_files: Path) -> None:
    from kefuqa.service.cli import ingest

    folder = tmp_path / "export"
    folder.mkdir()
    for n in ("c1.wav", "c1.json"):
        (folder / n).write_bytes((call_files / n).read_bytes())
    (folder / "manifest.csv").write_text(MANIFEST.format(cid="ING-1") + "ING-2,gone.wav,c1.json,A2,李雷,一组,,,\n",
                                         encoding="utf-8")
    said: list[str] = []
    rc = ingest([str(folder)], f"sqlite:///{tmp_path / 'wb.db'}", data_dir=str(tmp_path / "data"),
                echo=lambda _: None, err=said.append)
    assert rc == 1  # one row refused, the rest stored
    assert any("manifest.csv:第 3 行（ING-2）: 录音文件不存在：gone.wav" in s for s in said), said
    db = sqlite3.connect(tmp_path / "wb.db")
    rows = list(db.execute("select c.call_id, a.code, t.name, c.audio_file, c.source_name from conversations c "
                           "join agents a on a.id = c.agent_id join teams t on t.id = c.team_id"))
    assert len(rows) == 1 and rows[0][:3] == ("ING-1", "A1", "一组") and rows[0][4] == "c1.json + c1.wav"
    assert (tmp_path / "data" / "audio" / rows[0][3]).is_file()  # the recording is kept for the player
    (data,) = next(db.execute("select data from conversations"))
    conv = json.loads(data)
    assert conv["metrics"]["attributes"] == {"队列": "宽带"} and conv["agent"]["team"] == "一组"


def test_the_call_page_says_what_the_reader_found_wrong_with_a_pair(world: World, tmp_path: Path) -> None:
    """A recording whose channels are the other way round from its transcript: the voice rules are not
    judged, and the call page says why and how to fix it (the manifest's agent_channel)."""
    g = cs.build(cs.Spec(agent_db=-14.0, customer_db=-27.0, turns=3), "ignored")
    cs.write_call(str(tmp_path), "sw", cs.degrade(g.samples)[::-1], g.transcript, subtype="ULAW")
    cid = f"SWAP-{world.backend}"
    files = [("files", ("sw.wav", (tmp_path / "sw.wav").read_bytes())),
             ("files", ("sw.json", (tmp_path / "sw.json").read_bytes())),
             ("files", ("manifest.csv", f"call_id,recording,transcript\n{cid},sw.wav,sw.json\n".encode()))]
    out = world.post("qa", "/api/uploads", files=files).json()
    assert out["stored"] == 1, out
    (res,) = out["results"]
    from fastapi.testclient import TestClient

    with TestClient(world.client.app) as browser:
        world.browser_login(browser, "qa1")
        page = browser.get(f"/calls/{res['id']}").text
    notes = page[page.index('data-testid="call-notes"'):]
    notes = notes[:notes.index("</ul>")]
    assert "录音声道与转写角色相反" in notes and "agent_channel" in notes
