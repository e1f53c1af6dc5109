// Tell the developer's window (popup opener or embedding parent) how the flow ended; only its allowed origins hear it.
(function () {
  var body = document.body;
  var message = JSON.parse(body.getAttribute("data-message"));
  var origins = JSON.parse(body.getAttribute("data-origins"));
  [window.opener, window.parent !== window ? window.parent : null].forEach(function (target) {
    if (!target) return;
    origins.forEach(function (origin) { target.postMessage(message, origin); });
  });
})();
