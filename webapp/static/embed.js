/*
 * Liveness capture, framed in an operator's page.
 *
 *   <script src="https://verify.example.com/static/embed.js"></script>
 *   <div id="liveness"></div>
 *   <script>
 *     LivenessEmbed.open(document.getElementById('liveness'), sessionUrl)
 *       .then(({ sessionId, status }) => {
 *         // A cue only: ask YOUR backend, which reads GET /api/v1/sessions/<id>.
 *       });
 *   </script>
 *
 * The promise resolves with the first {type: "liveness:result"} message that comes from the
 * iframe it created (event.source) and from the capture page's origin (event.origin); any other
 * message is ignored. The session must have been created with embed_origin = your origin.
 *
 * The iframe starts `options.height` tall (720px) and then follows the page's own height, which
 * the page posts as {type: "liveness:resize", height} (same checks), up to the height of your
 * window: the page then lays out its challenge, camera preview and start button to fit in it, as
 * on a phone's screen, so that all three are on screen together once the frame is scrolled into
 * view (a taller page, such as the consent's text on a small phone, scrolls inside the frame).
 * `autoHeight: false` keeps the height you give.
 */
(function () {
  'use strict';

  function open(container, url, options) {
    options = options || {};
    var origin = new URL(url, window.location.href).origin;
    var iframe = document.createElement('iframe');
    iframe.src = url;
    iframe.allow = 'camera; microphone';
    iframe.title = options.title || '刷脸核验 Face verification';
    iframe.style.width = options.width || '100%';
    iframe.style.height = options.height || '720px';
    iframe.style.border = '0';
    container.appendChild(iframe);
    if (options.autoHeight !== false) followHeight(iframe, origin);

    return new Promise(function (resolve, reject) {
      var timer = null;
      function stop() {
        window.removeEventListener('message', onMessage);
        if (timer !== null) window.clearTimeout(timer);
      }
      function onMessage(event) {
        if (event.origin !== origin || event.source !== iframe.contentWindow) return;
        var data = event.data;
        if (!data || data.type !== 'liveness:result' || typeof data.sessionId !== 'string') return;
        stop();
        resolve({ sessionId: data.sessionId, status: data.status, iframe: iframe });
      }
      window.addEventListener('message', onMessage);
      if (options.timeoutMs) {
        timer = window.setTimeout(function () {
          stop();
          reject(new Error('liveness: no result within ' + options.timeoutMs + ' ms'));
        }, options.timeoutMs);
      }
    });
  }

  // For the frame's whole life (the page's height changes after the result too).
  function followHeight(iframe, origin) {
    var wanted = null;  // the height the page last asked for
    function fit() {
      if (wanted === null) return;
      var most = Math.max(window.innerHeight || 0, 320);
      iframe.style.height = Math.round(Math.min(Math.max(wanted, 200), most, 4000)) + 'px';
    }
    window.addEventListener('message', function (event) {
      if (event.origin !== origin || event.source !== iframe.contentWindow) return;
      var data = event.data;
      if (!data || data.type !== 'liveness:resize' || typeof data.height !== 'number' || !isFinite(data.height)) return;
      wanted = data.height;
      fit();
    });
    window.addEventListener('resize', fit);
  }

  window.LivenessEmbed = { open: open };
})();
