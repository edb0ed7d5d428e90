// Vellum web UI: small enhancements over pages that work without JavaScript.
// - Idle-timeout notice: two minutes before the session ends for inactivity,
//   a notice offers to stay signed in (a GET of /session/keepalive counts as
//   activity); when it has ended, the notice says so and links to sign-in.
// - Forms with data-confirm ask before they are sent (deletions, rotations).
'use strict';

(function () {
  var WARN_BEFORE_MS = 2 * 60 * 1000;
  var body = document.body;
  var notice = document.getElementById('session-notice');
  var expires = body.getAttribute('data-session-expires');
  var timer = null;

  function say(parts) {
    notice.textContent = '';
    parts.forEach(function (part) { notice.appendChild(part); });
    notice.hidden = false;
  }

  function text(value) {
    var span = document.createElement('span');
    span.textContent = value;
    return span;
  }

  function ended() {
    var link = document.createElement('a');
    link.href = '/login?ended=1&next=' + encodeURIComponent(location.pathname + location.search);
    link.textContent = 'Sign in again';
    say([text('Your session has ended after ' + body.getAttribute('data-idle-minutes') + ' minutes without activity.'), link]);
  }

  function warn(at) {
    var button = document.createElement('button');
    button.type = 'button';
    button.className = 'secondary small';
    button.textContent = 'Stay signed in';
    button.addEventListener('click', keepAlive);
    var time = new Date(at).toLocaleTimeString();
    say([text('Your session will end at ' + time + ' because of inactivity.'), button]);
  }

  function schedule(at) {
    if (timer !== null) clearTimeout(timer);
    var left = at - Date.now();
    if (left <= 0) return ended();
    if (left <= WARN_BEFORE_MS) {
      warn(at);
      timer = setTimeout(function () { schedule(at); }, Math.min(left, 1000 * 15));
    } else {
      notice.hidden = true;
      timer = setTimeout(function () { schedule(at); }, left - WARN_BEFORE_MS);
    }
  }

  function keepAlive() {
    fetch('/session/keepalive', { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (response) {
        if (!response.ok) return ended();
        return response.json().then(function (session) { schedule(Date.parse(session.expiresAt)); });
      })
      .catch(function () { /* offline: the notice stays */ });
  }

  if (expires !== null && notice !== null) schedule(Date.parse(expires));

  document.addEventListener('submit', function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute('data-confirm');
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
