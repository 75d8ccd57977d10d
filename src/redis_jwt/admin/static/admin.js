// redis-jwt admin page: live events (server-sent events) and live stats. Text only, no HTML.
(function () {
  "use strict";
  var root = document.body.getAttribute("data-root") || "";
  var list = document.getElementById("events");
  var live = document.getElementById("live");
  var state = document.getElementById("events-state");
  var shown = 0;
  var MAX = 100;

  function setLive(on, text) {
    live.setAttribute("data-state", on ? "on" : "off");
    state.textContent = text;
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function refreshStats() {
    fetch(root + "/api/stats", { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (!s) return;
        var values = document.querySelectorAll("[data-stat]");
        if (values[0]) values[0].textContent = s.sessions.toLocaleString();
        if (values[1]) values[1].textContent = s.users.toLocaleString();
      })
      .catch(function () {});
  }

  var KEY = "rjwt-admin-events";

  function remember(event) {
    try {
      var kept = JSON.parse(sessionStorage.getItem(KEY) || "[]");
      kept.push(event);
      sessionStorage.setItem(KEY, JSON.stringify(kept.slice(-MAX)));
    } catch (e) { /* storage full or disabled: the list simply starts empty next time */ }
  }

  function add(event) {
    if (shown === 0) list.textContent = "";
    var item = el("li");
    item.appendChild(el("span", "badge " + event.kind, event.kind));
    var who = event.user_id ? event.user_id : (event.reason || "connection");
    var line = el("span", "who", who);
    if (event.session_id) line.title = event.session_id;
    item.appendChild(line);
    var when = new Date(event.at).toLocaleTimeString();
    var detail = event.reason && event.user_id ? when + " · " + event.reason : when;
    item.appendChild(el("span", "when", detail));
    list.insertBefore(item, list.firstChild);
    shown += 1;
    while (list.children.length > MAX) list.removeChild(list.lastChild);
  }

  try {
    JSON.parse(sessionStorage.getItem(KEY) || "[]").forEach(add);
  } catch (e) { /* nothing kept */ }

  if (window.EventSource && list) {
    var source = new EventSource(root + "/events");
    source.onopen = function () { setLive(true, "live"); };
    source.onerror = function () { setLive(false, "reconnecting…"); };
    source.onmessage = function (message) {
      var event;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      add(event);
      remember(event);
      if (["created", "destroyed", "expired"].indexOf(event.kind) >= 0) refreshStats();
    };
  }
})();
