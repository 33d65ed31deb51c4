// redial agent workspace: the browser softphone. JsSIP (vendored, /static/jssip.js)
// registers the signed-in agent over SIP over WebSocket (RFC 7118) with its SIP
// password; redial's calls arrive with a WebRTC offer (ICE-lite, DTLS-SRTP, G.711).
// The card shows `softphone-status`: unregistered, registered, ringing, in-call.
// JsSIP reconnects the WebSocket with back-off and registers again by itself after a
// network blip or a redial restart.
"use strict";

(function () {
  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function hook(name) { return $("[data-testid=" + name + "]"); }

  var card = $("#softphone");
  if (!card || !window.JsSIP) return;
  var wsUrl = card.getAttribute("data-ws");
  var agent = card.getAttribute("data-agent");
  if (!wsUrl || !agent) return;
  // A listener on every address is reached at the host the page came from.
  wsUrl = wsUrl.replace("://0.0.0.0:", "://" + location.hostname + ":").replace("://[::]:", "://" + location.hostname + ":");

  var ua = null;
  var session = null;
  var registered = false;
  var ringer = null;

  // State for tests and the agent: one word in softphone-status, detail beside it.
  function show(state, detail) {
    hook("softphone-status").textContent = state;
    card.setAttribute("data-state", state);
    hook("softphone-detail").textContent = detail || "";
    var inCall = state === "in-call";
    hook("softphone-answer").disabled = state !== "ringing";
    hook("softphone-hangup").disabled = !(state === "ringing" || inCall);
    hook("softphone-mute").disabled = !inCall;
    hook("softphone-hold").disabled = !inCall;
    $all("[data-testid=softphone-dtmf]").forEach(function (b) { b.disabled = !inCall; });
    hook("softphone-ringing").hidden = state !== "ringing";
  }
  function idle() { show(registered ? "registered" : "unregistered"); }

  // The ring: a two-tone cadence from Web Audio (no media file to fetch).
  function ring(on) {
    if (!on) {
      if (ringer) { clearInterval(ringer.timer); ringer.ctx.close().catch(function () {}); ringer = null; }
      return;
    }
    if (ringer || !window.AudioContext) return;
    var ctx = new AudioContext();
    var beep = function () {
      [440, 480].forEach(function (f) {
        var o = ctx.createOscillator(), g = ctx.createGain();
        o.frequency.value = f; g.gain.value = 0.05;
        o.connect(g); g.connect(ctx.destination);
        o.start(); o.stop(ctx.currentTime + 1.0);
      });
    };
    beep();
    ringer = { ctx: ctx, timer: setInterval(beep, 3000) };
  }

  function header(req, name) {
    try { return req.getHeader(name) || ""; } catch (e) { return ""; }
  }

  function micConstraints() {
    var id = hook("softphone-mic").value;
    return { audio: id ? { deviceId: { exact: id } } : true, video: false };
  }

  function listMics() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
    navigator.mediaDevices.enumerateDevices().then(function (devs) {
      var sel = hook("softphone-mic");
      var keep = sel.value;
      $all("option:not([value=''])", sel).forEach(function (o) { o.remove(); });
      devs.filter(function (d) { return d.kind === "audioinput" && d.deviceId && d.deviceId !== "default"; }).forEach(function (d, i) {
        var o = document.createElement("option");
        o.value = d.deviceId; o.textContent = d.label || "Microphone " + (i + 1);
        sel.append(o);
      });
      sel.value = keep;
    }).catch(function () {});
  }

  function answer() {
    if (!session || session.isEstablished()) return;
    ring(false);
    session.answer({ mediaConstraints: micConstraints(), pcConfig: { iceServers: [] } });
  }

  function onSession(ev) {
    var s = ev.session;
    if (ev.originator !== "remote") return;
    if (session) { s.terminate({ status_code: 486 }); return; }
    session = s;
    window.softphone.session = s;
    var req = ev.request;
    var caller = (s.remote_identity && (s.remote_identity.display_name || s.remote_identity.uri.user)) || "unknown";
    var cb = header(req, "X-Redial-Callback-Id");
    var ctx = [];
    if (cb) ctx.push("Callback " + cb);
    var q = header(req, "X-Redial-Queue"); if (q) ctx.push("queue " + q);
    var why = header(req, "X-Redial-Reason") || header(req, "X-Redial-Notes"); if (why) ctx.push(why);
    var when = header(req, "X-Redial-When"); if (when) ctx.push("asked for “" + when + "”");
    hook("softphone-caller").textContent = "Call from " + caller;
    hook("softphone-context").textContent = ctx.join(" · ");
    hook("softphone-ringing").setAttribute("data-callback-id", cb);
    show("ringing", caller);
    s.on("peerconnection", function (e) {
      e.peerconnection.addEventListener("track", function (t) {
        var a = $("#softphone-audio");
        a.srcObject = t.streams[0] || new MediaStream([t.track]);
        a.play().catch(function () {});
      });
    });
    s.on("accepted", function () { ring(false); show("in-call", caller); listMics(); });
    s.on("confirmed", function () { show("in-call", caller); });
    var end = function (e) {
      ring(false);
      session = null;
      window.softphone.session = null;
      setMuted(false);
      setHeld(false);
      idle();
      hook("softphone-detail").textContent = e && e.cause ? "last call: " + e.cause : "";
    };
    // Hold (RFC 3264 §8.4): JsSIP sends a re-INVITE with a=sendonly and silences the
    // microphone; the button follows what the session says.
    s.on("hold", function (e) { if (e.originator === "local") { setHeld(true); show("in-call", "on hold"); } });
    s.on("unhold", function (e) { if (e.originator === "local") { setHeld(false); show("in-call", caller); } });
    s.on("ended", end);
    s.on("failed", end);
    if (cb && hook("softphone-auto-answer").checked) answer(); else ring(true);
  }

  function setMuted(on) {
    var b = hook("softphone-mute");
    b.setAttribute("aria-pressed", on ? "true" : "false");
    b.textContent = on ? "Unmute" : "Mute";
  }

  function setHeld(on) {
    var b = hook("softphone-hold");
    b.setAttribute("aria-pressed", on ? "true" : "false");
    b.textContent = on ? "Resume" : "Hold";
  }

  function start(password) {
    var host = new URL(wsUrl).hostname;
    var socket = new JsSIP.WebSocketInterface(wsUrl);
    ua = new JsSIP.UA({
      sockets: [socket],
      uri: "sip:" + agent + "@" + host,
      password: password,
      register: true,
      session_timers: false,
      // Back off 1 s to 8 s between reconnection attempts: a restarted redial is found quickly.
      connection_recovery_min_interval: 1,
      connection_recovery_max_interval: 8,
    });
    window.softphone.ua = ua;
    ua.on("registered", function () { registered = true; if (!session) idle(); });
    ua.on("unregistered", function () { registered = false; if (!session) idle(); });
    ua.on("disconnected", function () { registered = false; if (!session) show("unregistered", "reconnecting"); });
    ua.on("registrationFailed", function (e) {
      registered = false;
      show("unregistered", "registration failed: " + e.cause);
      if (e.cause === JsSIP.C.causes.AUTHENTICATION_ERROR || e.cause === JsSIP.C.causes.REJECTED) {
        try { sessionStorage.removeItem("redial.sip"); } catch (x) { /* ignore */ }
        ua.stop();
        askPassword();
      }
    });
    ua.on("newRTCSession", onSession);
    ua.start();
  }

  function askPassword() {
    var form = $("#softphone-login");
    form.hidden = false;
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var pw = hook("softphone-password").value;
      if (!pw) return;
      try { sessionStorage.setItem("redial.sip", JSON.stringify({ agent: agent, password: pw })); } catch (e) { /* ignore */ }
      form.hidden = true;
      start(pw);
    }, { once: true });
  }

  window.softphone = { ua: null, session: null };
  hook("softphone-answer").addEventListener("click", answer);
  hook("softphone-hangup").addEventListener("click", function () { if (session) session.terminate(); });
  hook("softphone-mute").addEventListener("click", function () {
    if (!session) return;
    var muted = session.isMuted().audio;
    if (muted) session.unmute({ audio: true }); else session.mute({ audio: true });
    setMuted(!muted);
  });
  hook("softphone-hold").addEventListener("click", function () {
    if (!session || !session.isEstablished()) return;
    if (session.isOnHold().local) session.unhold(); else session.hold();
  });
  $all("[data-testid=softphone-dtmf]").forEach(function (b) {
    b.addEventListener("click", function () {
      // RFC 4733 in the media (RTCDTMFSender), as the carrier expects it.
      if (session) session.sendDTMF(b.getAttribute("data-digit"), { transportType: "RFC2833", duration: 160 });
    });
  });
  hook("softphone-mic").addEventListener("change", function () {
    // Another microphone during a call: the sender's track is replaced, no re-INVITE.
    if (!session || !session.connection) return;
    navigator.mediaDevices.getUserMedia(micConstraints()).then(function (stream) {
      var track = stream.getAudioTracks()[0];
      session.connection.getSenders().forEach(function (s) { if (s.track && s.track.kind === "audio") s.replaceTrack(track); });
    }).catch(function () {});
  });
  listMics();
  idle();

  var saved = null;
  try { saved = JSON.parse(sessionStorage.getItem("redial.sip") || "null"); } catch (e) { saved = null; }
  if (saved && saved.agent === agent && saved.password) start(saved.password); else askPassword();
})();
