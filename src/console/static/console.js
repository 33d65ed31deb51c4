// redial console: live updates and small conveniences. No framework; the
// pages work without this script (forms post, links navigate), it only
// refreshes numbers and fragments from the server-sent event stream, shows
// how a free-text time resolves, converts times to the viewer's timezone,
// and asks for confirmation before a bulk action.
"use strict";

(function () {
  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  // Times in the viewer's own timezone.
  function localTimes(root) {
    $all("time[data-local]", root).forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) {
        t.textContent = d.toLocaleString(undefined, { weekday: "short", day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit", hour12: false, timeZoneName: "short" });
      }
    });
  }

  // Live preview of a free-text `when`.
  function previews() {
    $all("input[data-preview]").forEach(function (input) {
      var out = input.parentNode.querySelector("output.preview");
      if (!out) return;
      var timer = null;
      input.addEventListener("input", function () {
        clearTimeout(timer);
        timer = setTimeout(function () {
          var text = input.value.trim();
          if (!text) { out.textContent = ""; return; }
          var form = input.form;
          var queueSel = form && form.querySelector("select[name=queue]");
          var queue = queueSel ? queueSel.value : input.getAttribute("data-preview");
          var q = "queue=" + encodeURIComponent(queue) + "&text=" + encodeURIComponent(text);
          var tz = input.getAttribute("data-tz");
          if (tz) q += "&tz=" + encodeURIComponent(tz);
          fetch("/console/preview?" + q, { credentials: "same-origin" })
            .then(function (r) { return r.text(); })
            .then(function (t) { out.textContent = t; })
            .catch(function () {});
        }, 250);
      });
    });
  }

  // Every bulk action states the count and asks first. "All matching this
  // filter" asks the server how many that is, and sends the count it
  // confirmed: the server acts only if the filter still matches that many.
  function bulkConfirm() {
    var form = $("#bulk");
    if (!form) return;
    var confirmedBy = null;
    form.addEventListener("submit", function (ev) {
      var btn = ev.submitter;
      if (confirmedBy && btn === confirmedBy) { confirmedBy = null; return; }
      var verb = (btn && btn.getAttribute("data-verb")) || "Change";
      var all = form.querySelector("input[name=scope]");
      if (all && all.checked) {
        ev.preventDefault();
        var g = function (n) { return encodeURIComponent(form.querySelector("input[name=filter_" + n + "]").value); };
        var q = "status=" + g("status") + "&queue=" + g("queue") + "&owner=" + g("owner") + "&phone=" + g("phone");
        fetch("/console/bulk/count?" + q, { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (c) {
            if (!c) return;
            if (c.count > c.max) { window.alert("This filter matches more than " + c.max + " callbacks; narrow it first."); return; }
            if (c.count === 0) { window.alert("No scheduled callback matches this filter."); return; }
            if (!window.confirm(verb + " " + c.count + " callback" + (c.count === 1 ? "" : "s") + " (all matching this filter)?")) return;
            form.querySelector("input[name=confirmed]").value = String(c.count);
            confirmedBy = btn;
            form.requestSubmit(btn);
          })
          .catch(function () {});
        return;
      }
      var n = $all('input[name=id][form=bulk]:checked').length;
      if (n === 0) { ev.preventDefault(); window.alert("Select at least one callback first."); return; }
      if (!window.confirm(verb + " " + n + " callback" + (n === 1 ? "" : "s") + "?")) ev.preventDefault();
    });
  }

  function debounce(fn, ms) {
    var t = null;
    return function () { clearTimeout(t); t = setTimeout(fn, ms); };
  }

  var refreshTiles = debounce(function () {
    fetch("/console/tiles", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (t) {
        if (!t) return;
        Object.keys(t).forEach(function (k) {
          var el = $('[data-tile="' + k + '"]');
          if (el) el.textContent = String(t[k]);
        });
      })
      .catch(function () {});
  }, 150);

  var refreshBanner = debounce(function () {
    var b = $("#banner");
    if (!b) return;
    fetch("/agent/banner", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("banner");
        if (fresh) { b.replaceWith(fresh); localTimes(fresh); }
      })
      .catch(function () {});
  }, 150);

  function showPop(id) {
    var box = $("#screen-pop");
    if (!box) return;
    fetch("/agent/pop/" + encodeURIComponent(id), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var pop = doc.querySelector("[data-testid=screen-pop]");
        if (pop) { box.replaceChildren(document.importNode(pop, true)); }
      })
      .catch(function () {});
  }

  function updateRow(cb) {
    $all('tr[data-callback-id="' + cb.id + '"]').forEach(function (row) {
      row.setAttribute("data-status", cb.status);
      var s = row.querySelector("[data-role=status]");
      if (s) {
        s.textContent = cb.status.replace("_", " ").replace(/^./, function (c) { return c.toUpperCase(); });
        s.className = "status " + cb.status;
      }
      var badge = row.querySelector("[data-testid=callback-badge]");
      if (badge && cb.status !== "scheduled" && cb.status !== "in_progress") badge.remove();
    });
  }

  function live() {
    if (!window.EventSource) return;
    var page = document.body.getAttribute("data-page");
    if (page === "login") return;
    var me = $("#agent") && $("#agent").getAttribute("data-agent-id");
    var es = new EventSource("/console/events");
    document.body.setAttribute("data-live", "connecting");
    es.addEventListener("open", function () { document.body.setAttribute("data-live", "open"); });
    es.addEventListener("callback", function (ev) {
      var cb = JSON.parse(ev.data);
      updateRow(cb);
      refreshTiles();
      if (me) refreshBanner();
    });
    es.addEventListener("attempt", function () { refreshTiles(); });
    es.addEventListener("agent", function (ev) {
      refreshTiles();
      var a = JSON.parse(ev.data);
      if (me && a.id === me) {
        var st = $("[data-testid=agent-state]");
        if (st && (a.state === "available" || a.state === "away")) { st.textContent = a.state; st.setAttribute("data-state", a.state); }
        if (a.reserved_for) showPop(a.reserved_for);
        refreshBanner();
      }
    });
    es.addEventListener("trunk", function () { refreshTiles(); });
  }

  // An agent's sign-in also signs the workspace's softphone in: the SIP password stays
  // in this tab's session storage (never in a cookie or the page), for JsSIP's digest.
  function rememberSipPassword() {
    var id = $("[data-testid=login-agent-id]");
    var pw = $("[data-testid=login-password]");
    if (!id || !pw || !id.form) return;
    id.form.addEventListener("submit", function () {
      try {
        if (id.value && pw.value) sessionStorage.setItem("redial.sip", JSON.stringify({ agent: id.value, password: pw.value }));
      } catch (e) { /* storage refused: the softphone asks */ }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    previews();
    bulkConfirm();
    rememberSipPassword();
    live();
  });
})();
