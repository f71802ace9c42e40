"""Write examples/telephony/: two short calls as a PBX and an ASR vendor export them.

    .venv/bin/python scripts/make_telephony_example.py

- ``TEL-0001.wav``: 8 kHz stereo G.711 µ-law (agent left, customer right, −30 dB crosstalk, line noise);
  ``TEL-0001.json``: its Alibaba Cloud recording-file recognition result. The agent speaks 12 dB above
  this customer at about −12 dBFS (VOC003) in a flat voice (VOC004), and closes without asking for other
  needs, thanks or goodbye (CLS001, CLS002).
- ``TEL-0002.wav``: 8 kHz stereo G.711 A-law with the agent on the RIGHT channel (the manifest says so);
  ``TEL-0002.json``: a conversation JSON transcript. The customer is angry (EVT004), the agent stays calm and lively.
- ``manifest.csv``: call id, files, agent, team, direction, start time, ring seconds, agent channel and a
  queue column kept as an attribute.

Speech is espeak-ng Mandarin (voice cmn-latn-pinyin); the transcripts carry the same sentences in Chinese
characters. Regenerating gives the same files on the same espeak-ng version.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402

import audio_synth as synth  # noqa: E402
import call_synth as cs  # noqa: E402

OUT = ROOT / "examples" / "telephony"
SR = 8000

CALL1 = [  # role, pinyin, text, level dBFS
    ("agent", "nin2 hao3 zhe4 li3 shi4 kuan1 dai4 ke4 fu2 zhong1 xin1 gong1 hao4 yao1 ling2 er4 san1 qing3 wen4 you3 "
     "shen2 me5 ke3 yi3 bang1 nin2", "您好，这里是宽带客服中心，工号1023，请问有什么可以帮您？", -12.0),
    ("customer", "wo3 jia1 kuan1 dai4 shang4 bu4 liao3 wang3", "我家宽带上不了网。", -24.0),
    ("agent", "qing3 nin2 shao1 deng3 wo3 bang1 nin2 cha2 yi2 xia4", "请您稍等，我帮您查一下。", -12.5),
    ("customer", "hao3 de5 na4 wo3 deng3 yi2 xia4", "好的，那我等一下。", -24.5),
    ("agent", "xian4 lu4 you3 gu4 zhang4 wo3 ma3 shang4 bang1 nin2 pai4 dan1", "线路有故障，我马上帮您派单。", -11.5),
]
CALL2 = [
    ("agent", "nin2 hao3 zhe4 li3 shi4 kuan1 dai4 ke4 fu2 zhong1 xin1 gong1 hao4 ling2 ba1 yao1 wu3 qing3 wen4 you3 "
     "shen2 me5 ke3 yi3 bang1 nin2", "您好，这里是宽带客服中心，工号0815，请问有什么可以帮您？", -26.0),
    ("customer", "ping2 shen2 me5 you4 duan4 wang3 qi4 si3 wo3 le5", "凭什么又断网，气死我了！", -18.0),
    ("agent", "fei1 chang2 bao4 qian4 wo3 ma3 shang4 bang1 nin2 pai4 dan1", "非常抱歉，我马上帮您派单。", -26.0),
    ("customer", "hao3 ba5 ni3 kuai4 dian3 a5", "好吧，你快点啊。", -22.0),
    ("agent", "hai2 you3 qi2 ta1 ke3 yi3 bang1 nin2 de5 ma5 gan3 xie4 lai2 dian4 zai4 jian4",
     "还有其他可以帮您的吗？感谢来电，再见。", -26.5),
]
AGENT_RANGE = {"TEL-0001": "low", "TEL-0002": "x-high"}  # espeak-ng pitch range: flat agent, lively agent


def _say(role: str, pinyin: str, level: float, agent_range: str) -> np.ndarray:
    if role == "agent":
        return synth.speak(synth.prosody(pinyin, agent_range), ssml=True, voice="cmn-latn-pinyin", pitch=40,
                           speed=190, level_dbfs=level)
    return synth.speak(pinyin, voice="cmn-latn-pinyin", pitch=70, speed=190, level_dbfs=level)


def render(lines: list, agent_range: str, agent_left: bool = True) -> tuple[np.ndarray, list[dict]]:
    roles = ("agent", "customer") if agent_left else ("customer", "agent")
    speech = [(role, _say(role, py, lvl, agent_range), zh) for role, py, zh, lvl in lines]
    seconds = sum(x.size for _, x, _ in speech) / SR + 0.6 * (len(speech) + 1)
    call = synth.Call(seconds, SR, roles=roles)
    t = 0.6
    utts = []
    for role, x, zh in speech:
        call.add(role, t, x)
        utts.append({"role": role, "start": round(t, 2), "end": round(t + x.size / SR, 2), "text": zh})
        t += x.size / SR + 0.6
    return cs.degrade(call.clean, snr_db=35.0, bleed_db=-30.0, seed=1), utts


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    x1, u1 = render(CALL1, AGENT_RANGE["TEL-0001"])
    synth.write(str(OUT / "TEL-0001.wav"), x1, SR, subtype="ULAW")
    aliyun = {"TaskId": "example-tel-0001", "StatusCode": 21050000, "StatusText": "SUCCESS",
              "BizDuration": int(x1.shape[1] / SR * 1000),
              "Result": {"Sentences": [{"BeginTime": int(u["start"] * 1000), "EndTime": int(u["end"] * 1000),
                                        "ChannelId": 0 if u["role"] == "agent" else 1, "Text": u["text"]}
                                       for u in u1]}}
    (OUT / "TEL-0001.json").write_text(json.dumps(aliyun, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    x2, u2 = render(CALL2, AGENT_RANGE["TEL-0002"], agent_left=False)
    synth.write(str(OUT / "TEL-0002.wav"), x2, SR, subtype="ALAW")
    conv = {"id": "TEL-0002", "channel": "phone", "ended_by": "customer", "utterances": u2}
    (OUT / "TEL-0002.json").write_text(json.dumps(conv, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    (OUT / "manifest.csv").write_text(
        "call_id,recording,transcript,agent_id,agent_name,team,direction,started_at,ring_seconds,agent_channel,queue\n"
        "TEL-0001,TEL-0001.wav,TEL-0001.json,A1023,王芳,宽带一组,呼入,2026-03-05T14:32:10+08:00,6,left,宽带报障\n"
        "TEL-0002,TEL-0002.wav,TEL-0002.json,A0815,李强,宽带二组,呼入,2026-03-05T15:05:41+08:00,4,right,宽带报障\n",
        encoding="utf-8")
    for p in sorted(OUT.iterdir()):
        print(f"{p.relative_to(ROOT)}  {p.stat().st_size} bytes")


if __name__ == "__main__":
    main()
