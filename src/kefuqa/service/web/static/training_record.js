// Spoken replies in the scenario page: record with the microphone (MediaRecorder), put the recording into the
// form's file field and send it; the server transcribes it and grades the text like a typed reply.
(function () {
  var form = document.querySelector('[data-testid="reply-form"]');
  var input = form && form.querySelector('input[name="audio"]');
  if (!input || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.MediaRecorder) return;
  var limit = parseInt(input.getAttribute('data-max-seconds') || '60', 10) - 1;
  var btn = document.createElement('button');
  btn.type = 'button';
  btn.textContent = '录音回复';
  btn.setAttribute('data-testid', 'record');
  var state = document.createElement('span');
  state.className = 'muted';
  state.setAttribute('role', 'status');
  state.setAttribute('data-testid', 'record-state');
  var send = form.querySelector('[data-testid="send"]');
  send.insertAdjacentElement('beforebegin', btn);
  btn.insertAdjacentElement('afterend', state);
  var rec = null, chunks = [], started = 0, timer = null;
  btn.addEventListener('click', function () {
    if (rec) { rec.stop(); return; }
    navigator.mediaDevices.getUserMedia({audio: true}).then(function (stream) {
      chunks = [];
      rec = new MediaRecorder(stream);
      rec.ondataavailable = function (e) { if (e.data && e.data.size) chunks.push(e.data); };
      rec.onstop = function () {
        stream.getTracks().forEach(function (t) { t.stop(); });
        clearInterval(timer);
        var type = rec.mimeType || 'audio/webm';
        rec = null;
        var file = new File(chunks, 'reply.' + (type.indexOf('ogg') >= 0 ? 'ogg' : 'webm'), {type: type});
        var dt = new DataTransfer();
        dt.items.add(file);
        input.files = dt.files;
        btn.disabled = true;
        state.textContent = '录音完成，正在识别……';
        form.submit();
      };
      rec.start();
      started = Date.now();
      btn.textContent = '停止并发送';
      state.textContent = '正在录音……';
      timer = setInterval(function () {
        var s = Math.floor((Date.now() - started) / 1000);
        state.textContent = '正在录音 ' + s + ' 秒';
        if (s >= limit && rec) rec.stop();
      }, 250);
    }).catch(function () {
      state.textContent = '无法使用麦克风：请允许浏览器使用麦克风，或选择录音文件上传';
    });
  });
})();
