// ringlog console: applies the live streams' updates (server-sent events carrying HTML the
// server rendered and escaped) and keeps the durations of calls in progress ticking.
(function () {
  "use strict";

  function byId(id) { return document.getElementById(id); }

  function fragment(html) {
    var template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function duration(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return h ? h + ":" + pad(m) + ":" + pad(r) : m + ":" + pad(r);
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-started]").forEach(function (cell) {
      cell.textContent = duration(now - Number(cell.getAttribute("data-started")));
    });
  }

  function say(state, text) {
    var pill = byId("live-status");
    if (pill) { pill.setAttribute("data-state", state); pill.textContent = text; }
  }

  function connect(url, handlers) {
    var source = new EventSource(url);
    source.onopen = function () { say("live", "live"); };
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        say("closed", "stopped: sign in again");
        var pill = byId("live-status");
        if (pill && !pill.querySelector("a")) {
          var link = document.createElement("a");
          link.href = "/console/sign-in?next=" + encodeURIComponent(location.pathname);
          link.textContent = " sign in";
          pill.appendChild(link);
        }
      } else {
        say("connecting", "reconnecting…");
      }
    };
    Object.keys(handlers).forEach(function (name) {
      source.addEventListener(name, function (event) { handlers[name](JSON.parse(event.data)); });
    });
    window.addEventListener("pagehide", function () { source.close(); });
    return source;
  }

  function flash(element) {
    element.classList.remove("changed");
    void element.offsetWidth;
    element.classList.add("changed");
  }

  function board() {
    var section = byId("board");
    if (!section) { return; }
    var sections = ["in_progress", "recent"];
    connect(section.getAttribute("data-stream"), {
      board: function (message) {
        var fresh = {};
        Object.keys(message.rows).forEach(function (ref) { fresh[ref] = fragment(message.rows[ref]); });
        message.remove.forEach(function (ref) {
          var old = byId("call-" + ref);
          if (old) { old.remove(); }
        });
        sections.forEach(function (name) {
          var body = byId(name), refs = message[name];
          refs.forEach(function (ref) {
            var row = fresh[ref];
            if (row) {
              var old = byId("call-" + ref);
              if (old) { old.remove(); }
              if (!message.full) { flash(row); }
            } else {
              row = byId("call-" + ref);
            }
            if (row) { body.appendChild(row); }
          });
          Array.prototype.slice.call(body.children).forEach(function (row) {
            if (refs.indexOf(row.getAttribute("data-ref")) < 0) { row.remove(); }
          });
          byId(name + "-count").textContent = String(refs.length);
          byId(name + "-empty").hidden = refs.length > 0;
        });
        tick();
      },
      feed: function (message) {
        var list = byId("feed");
        message.items.slice().reverse().forEach(function (html) {
          var item = fragment(html), position = item.getAttribute("data-position");
          var known = Array.prototype.some.call(list.children, function (li) {
            return li.getAttribute("data-position") === position;
          });
          if (!known) { list.insertBefore(item, list.firstChild); }
        });
        while (list.children.length > 20) { list.lastElementChild.remove(); }
      }
    });
  }

  function timeline() {
    var list = byId("events");
    if (!list || !list.getAttribute("data-stream")) { return; }
    var seen = {};
    Array.prototype.forEach.call(list.children, function (li) { seen[li.getAttribute("data-position")] = true; });
    connect(list.getAttribute("data-stream"), {
      call: function (message) {
        if (message.header) {
          var header = byId("call-header");
          if (header) { header.replaceWith(fragment(message.header)); }
        }
        message.events.forEach(function (event) {
          if (seen[event.position]) { return; }
          seen[event.position] = true;
          var item = fragment(event.html);
          list.appendChild(item);
          flash(item);
        });
        var count = byId("events-count");
        if (count) { count.textContent = String(list.children.length); }
        tick();
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    board();
    timeline();
    tick();
    if (document.querySelector("[data-started]") || byId("board") || byId("events")) {
      setInterval(tick, 1000);
    }
  });
})();
