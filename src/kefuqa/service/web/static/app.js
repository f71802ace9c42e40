// kefuqa web UI: small progressive enhancements; every page works without this file.
(function () {
  "use strict";

  function onReady(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  onReady(function () {
    // Table rows that link somewhere: click anywhere on the row.
    document.querySelectorAll("tr[data-href]").forEach(function (row) {
      row.addEventListener("click", function (ev) {
        if (ev.target.closest("a, button, input, select, form, label")) return;
        window.location.href = row.getAttribute("data-href");
      });
    });

    document.querySelectorAll("[data-back]").forEach(function (a) {
      a.addEventListener("click", function (ev) {
        if (window.history.length > 1) { ev.preventDefault(); window.history.back(); }
      });
    });

    // Rejections need a reason: say so before the round trip.
    document.querySelectorAll("form.review-form").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        var btn = ev.submitter;
        var reason = form.querySelector("input[name=reason]");
        if (btn && btn.value === "reject" && reason && !reason.value.trim()) {
          ev.preventDefault();
          reason.classList.add("need");
          reason.placeholder = "请先填写理由";
          reason.focus();
        }
      });
    });

    // Jump from a finding to its utterance.
    function flash(el) {
      el.classList.remove("flash");
      void el.offsetWidth;
      el.classList.add("flash");
    }
    document.querySelectorAll("[data-jump]").forEach(function (a) {
      a.addEventListener("click", function (ev) {
        var el = document.getElementById("u" + a.getAttribute("data-jump"));
        if (!el) return;
        ev.preventDefault();
        el.scrollIntoView({ behavior: "smooth", block: "center" });
        flash(el);
        seek(el.getAttribute("data-seek"));
      });
    });
    if (location.hash && /^#[uf]\d+$/.test(location.hash)) {
      var target = document.getElementById(location.hash.slice(1));
      if (target) flash(target);
    }

    // Audio: click an utterance or a timeline block to play from there; follow the playback.
    var player = document.getElementById("player") || document.querySelector(".kq-tl audio");
    function seek(at) {
      if (!player || at === null || at === undefined || at === "") return;
      var t = parseFloat(at);
      if (isNaN(t)) return;
      player.currentTime = t;
      var p = player.play();
      if (p && p.catch) p.catch(function () {});
    }
    if (player) {
      document.querySelectorAll(".utt[data-seek], .timeline .seek").forEach(function (el) {
        el.addEventListener("click", function (ev) {
          if (ev.target.closest("a, button, form")) return;
          seek(el.getAttribute("data-seek"));
          var idx = el.getAttribute("data-utt");
          if (idx !== null) {
            var u = document.getElementById("u" + idx);
            if (u) { u.scrollIntoView({ behavior: "smooth", block: "center" }); flash(u); }
          }
        });
      });
      var utts = Array.prototype.slice.call(document.querySelectorAll(".utt[data-start]"));
      var head = document.querySelector(".timeline .playhead");
      player.addEventListener("timeupdate", function () {
        var t = player.currentTime;
        utts.forEach(function (u) {
          var s = parseFloat(u.getAttribute("data-start")), e = parseFloat(u.getAttribute("data-end"));
          u.classList.toggle("playing", t >= s && t <= e);
        });
        if (head) {
          var left = parseFloat(head.getAttribute("data-left"));
          var width = parseFloat(head.getAttribute("data-width"));
          var dur = parseFloat(head.getAttribute("data-duration")) || player.duration || 1;
          var x = left + width * Math.min(1, t / dur);
          head.setAttribute("x1", x.toFixed(1));
          head.setAttribute("x2", x.toFixed(1));
        }
      });
    }

    // File inputs: show what was chosen.
    document.querySelectorAll("label.drop input[type=file]").forEach(function (input) {
      input.addEventListener("change", function () {
        var span = input.parentElement.querySelector("span");
        if (span && input.files.length) {
          span.textContent = input.files.length === 1 ? input.files[0].name : "已选择 " + input.files.length + " 个文件";
        }
      });
    });
  });
})();
