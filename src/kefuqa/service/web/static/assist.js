// 实时辅助: the agent panel (watches one call's guidance over the assist WebSocket) and the supervisor
// wall (polls the live calls). Text is always set with textContent.
(function () {
  "use strict";
  const WHO = { agent: "坐席", customer: "客户", system: "系统" };

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function clearEmpty(box) { const e = box.querySelector(".empty"); if (e) e.remove(); }
  function secs(t) {
    if (t === null || t === undefined) return "";
    const m = Math.floor(t / 60), s = Math.floor(t % 60);
    return m + ":" + String(s).padStart(2, "0");
  }

  function panel(root) {
    const callId = root.dataset.call;
    const status = document.querySelector("[data-testid=assist-status]");
    if (!callId) { listCalls(root); return; }
    const q = (id) => root.querySelector("[data-testid=" + id + "]");
    const transcript = q("transcript"), alerts = q("alerts"), cards = q("cards"), checklist = q("checklist"),
      style = q("style"), report = q("report");
    let lastSeq = 0, ended = false, retry = 0;

    function line(u) {
      const id = "u-" + u.id;
      let li = transcript.querySelector("[data-id='" + CSS.escape(id) + "']");
      if (!li) { li = el("li"); li.dataset.id = id; transcript.appendChild(li); }
      li.className = (u.role || "") + (u.final ? "" : " partial");
      li.replaceChildren(el("span", "who", WHO[u.role] || u.role), el("span", "muted small", secs(u.start) + " "),
        el("span", "", u.text));
      transcript.scrollTop = transcript.scrollHeight;
    }
    function item(it) {
      if (it.seq <= lastSeq) return;  // a replay after reconnecting: never shown twice
      lastSeq = it.seq;
      if (it.kind === "alert" || it.kind === "timer") {
        clearEmpty(alerts);
        const li = el("li", it.kind === "timer" ? "timer" : "alert");
        li.dataset.testid = "alert"; li.dataset.key = it.key;
        if (it.kind === "alert") {
          li.appendChild(el("strong", "", it.name + "：「" + (it.said || "") + "」"));
          if (it.say_instead) li.appendChild(el("span", "instead", "建议说：" + it.say_instead));
        } else {
          li.appendChild(el("strong", "", it.title));
          (it.script || []).forEach((s) => li.appendChild(el("span", "instead", s)));
        }
        alerts.prepend(li);
      } else if (it.kind === "card") {
        clearEmpty(cards);
        const c = el("article", "assist-card");
        c.dataset.testid = "card"; c.dataset.card = it.id;
        c.appendChild(el("h3", "", it.title));
        const ol = el("ol");
        (it.script || []).forEach((s) => ol.appendChild(el("li", "", s)));
        c.appendChild(ol);
        if (it.steps && it.steps.length) {
          const ul = el("ul", "steps");
          it.steps.forEach((s) => { const li = el("li", "", s.label); li.dataset.check = it.id + "." + s.id; ul.appendChild(li); });
          c.appendChild(ul);
        }
        if (it.source) c.appendChild(el("div", "src", "依据：" + it.source));
        cards.prepend(c);
      } else if (it.kind === "checklist") {
        const box = el("div");
        box.appendChild(el("h3", "", it.name));
        const ul = el("ul");
        it.items.forEach((s) => { const li = el("li", "", s.label); li.dataset.check = it.id + "." + s.id; ul.appendChild(li); });
        box.appendChild(ul);
        checklist.appendChild(box);
      } else if (it.kind === "check") {
        root.querySelectorAll("[data-check='" + CSS.escape(it.group + "." + it.id) + "']").forEach((li) => li.classList.add("done"));
      } else if (it.kind === "style") {
        style.replaceChildren(el("p", "", it.name + "（" + it.traits + "）"), el("p", "instead", it.advice));
      } else if (it.kind === "retract") {
        // the whole call did not confirm a live finding: its alert stays, struck through, with the reason
        const li = alerts.querySelector("[data-key='" + CSS.escape("alert:" + (it.item || it.finding)) + "']");
        if (li && !li.classList.contains("withdrawn")) {
          li.classList.add("withdrawn");
          li.appendChild(el("span", "why", "已撤回：" + it.message));
        }
      } else if (it.kind === "report") {
        report.hidden = false;
        report.querySelector("p").textContent = "得分 " + it.score + "（" + it.grade + "），" + it.findings + " 条发现";
      }
    }
    function connect() {
      const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/assist/v1/ws");
      ws.onopen = () => ws.send(JSON.stringify({ type: "start", v: 1, watch: true, call: { id: callId }, resume: { after_seq: lastSeq } }));
      ws.onmessage = (ev) => {
        const m = JSON.parse(ev.data);
        if (m.type === "ready") { retry = 0; status.textContent = "已连接 · " + callId; }
        else if (m.type === "transcript") m.utterances.forEach((u) => { if (m.partial_id) { const p = transcript.querySelector("[data-id='" + CSS.escape("u-" + m.partial_id) + "']"); if (p) p.remove(); } line(u); });
        else if (m.type === "guidance") m.items.forEach(item);
        else if (m.type === "error") status.textContent = m.message;
        else if (m.type === "ended") { ended = true; status.textContent = "通话已结束" + (m.stored ? "，已保存为质检会话" : ""); }
      };
      ws.onclose = () => {
        if (ended) return;
        retry = Math.min(retry + 1, 5);
        status.textContent = "连接中断，正在重连…";
        setTimeout(connect, 500 * retry);
      };
    }
    connect();
  }

  async function fetchCalls() {
    const r = await fetch("/api/assist/v1/calls", { credentials: "same-origin" });
    if (!r.ok) throw new Error(String(r.status));
    return (await r.json()).calls.filter((c) => !c.ended);
  }

  async function listCalls(root) {
    const ul = root.querySelector("[data-testid=live-calls]");
    try {
      const calls = await fetchCalls();
      if (calls.length) {
        ul.replaceChildren(...calls.map((c) => {
          const li = el("li"); const a = el("a", "", c.call_id + (c.agent ? " · " + (c.agent.name || c.agent.id || "") : ""));
          a.href = "/assist?call=" + encodeURIComponent(c.call_id); li.appendChild(a); return li;
        }));
      }
    } catch (e) { /* keep the last list */ }
    setTimeout(() => listCalls(root), 3000);
  }

  async function wall(box) {
    const count = document.querySelector("[data-testid=wall-count]");
    try {
      const calls = await fetchCalls();
      count.textContent = "进行中 " + calls.length + " 通";
      box.replaceChildren(...calls.map((c) => {
        const a = el("a", "wall-tile" + (c.alerts.length ? " alerting" : ""));
        a.href = "/assist?call=" + encodeURIComponent(c.call_id);
        a.dataset.testid = "tile";
        const h = el("header");
        h.append(el("span", "", (c.agent && (c.agent.name || c.agent.id)) || c.call_id),
          el("span", "", c.score === null ? "—" : String(Math.round(c.score))));
        a.append(h, el("div", "muted small", c.call_id + " · " + secs(c.call_seconds) + (c.team ? " · " + c.team : "")),
          el("div", "last", c.last));
        const ul = el("ul");
        c.alerts.slice(-3).forEach((x) => ul.appendChild(el("li", "", x.title)));
        c.cards.slice(-2).forEach((x) => ul.appendChild(el("li", "", "卡片：" + x)));
        a.appendChild(ul);
        return a;
      }));
    } catch (e) { count.textContent = "无法获取通话列表"; }
    setTimeout(() => wall(box), 2000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById("assist");
    if (root) panel(root);
    const w = document.getElementById("assist-wall");
    if (w) wall(w);
  });
})();
