// The scanner page (templates/gate/scanner.html): keyboard-wedge scanners (they type the code and
// Enter into the focused field), the camera where the browser has BarcodeDetector, typed numbers,
// search with manual check-in and (providers) undo, live counts over SSE with a polling fallback.
// Offline: the event's list (keys and ticket states) is kept in localStorage; when the network
// drops, codes are verified here (WebCrypto Ed25519) against it, check-ins are queued and synced
// through the batch endpoint when the network is back (first scan wins; conflicts are listed).
(() => {
  "use strict";
  const root = document.querySelector("[data-gate]");
  if (!root) return;
  const eventId = Number(root.dataset.eventId);
  const isProvider = root.dataset.role === "provider";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (sel) => root.querySelector(sel);
  const form = $("[data-scan-form]"), input = $("[data-code]"), gateInput = $("[data-gate-name]");
  const panel = $("[data-result]"), verdict = $("[data-verdict]"), who = $("[data-who]"), what = $("[data-what]");
  const store = (name) => `kwika.gate.${eventId}.${name}`;
  const WORDS = {
    admitted: "Come in", repeat: "Already scanned here just now: fine, come in", used: "Already used",
    revoked: "This code was replaced: the ticket was given to someone else",
    refunded: "Refunded: this ticket is void", cancelled: "Cancelled: this ticket is void",
    unknown: "Not a ticket of this event", wrong_event: "A ticket for another event",
    forged: "Not a genuine ticket", malformed: "Not a ticket code",
  };
  const STATUS = { v: "valid", u: "used", r: "refunded", c: "cancelled", x: "revoked" };
  const REPEAT_MS = 30000;

  let online = navigator.onLine;
  let list = null;           // {version, keys: Map kid -> CryptoKey, tickets: Map serial -> row, packages, seats}
  let pending = load("pending", []);
  let syncing = false;
  let audio = null;

  function load(name, fallback) {
    try { return JSON.parse(localStorage.getItem(store(name))) ?? fallback; } catch { return fallback; }
  }
  function save(name, value) {
    try { localStorage.setItem(store(name), JSON.stringify(value)); } catch { /* full: kept in memory */ }
  }

  // --- feedback ---------------------------------------------------------------------------
  function beep(kind) {
    try {
      audio = audio || new AudioContext();
      const notes = kind === "ok" ? [[880, 0, 0.12]] : kind === "warn" ? [[660, 0, 0.1], [660, 0.16, 0.1]]
        : [[220, 0, 0.45]];
      for (const [freq, at, len] of notes) {
        const osc = audio.createOscillator(), gain = audio.createGain();
        osc.frequency.value = freq; osc.type = kind === "bad" ? "square" : "sine";
        gain.gain.value = 0.2; osc.connect(gain); gain.connect(audio.destination);
        osc.start(audio.currentTime + at); osc.stop(audio.currentTime + at + len);
      }
    } catch { /* no audio: the colour and words still say it */ }
    if (navigator.vibrate) navigator.vibrate(kind === "ok" ? 150 : kind === "warn" ? [100, 80, 100] : [300, 100, 300]);
  }

  function clock(ms) {
    return ms ? new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "earlier";
  }

  function show(result, ticket, extra) {
    const kind = result === "admitted" ? "ok" : result === "repeat" ? "warn" : "bad";
    panel.className = `gt-result gt-${kind}`;
    panel.dataset.outcome = result;
    let words = WORDS[result] || result;
    if (result === "used" && ticket) words += ` at ${clock(ticket.checked_in_at)}, gate ${ticket.gate || "?"}`;
    verdict.textContent = words + (extra || "");
    who.textContent = ticket && ticket.attendee ? ticket.attendee : "";
    what.textContent = ticket ? [ticket.package, ticket.seat].filter(Boolean).join(" · ") : "";
    beep(kind);
  }

  // --- network ----------------------------------------------------------------------------
  async function call(url, options = {}, timeout = 4000) {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), timeout);
    const headers = { "X-CSRF-Token": csrf, ...(options.body ? { "Content-Type": "application/json" } : {}),
                      ...(options.headers || {}) };
    try {
      return await fetch(url, { credentials: "same-origin", ...options, headers, signal: ctrl.signal });
    } finally { clearTimeout(timer); }
  }

  function setOnline(state) {
    online = state;
    root.querySelector("[data-net]").textContent = state ? "Online" : "Offline: checking against this device's list";
    root.querySelector(".gt-net").classList.toggle("gt-offline", !state);
    if (state) { sync(); refreshList(); }
  }

  function showPending() {
    root.querySelector("[data-pending-words]").textContent =
      pending.length ? `${pending.length} scan${pending.length === 1 ? "" : "s"} waiting to sync` : "no scans waiting";
  }

  // --- the offline list -------------------------------------------------------------------
  function b64(text) { return Uint8Array.from(atob(text), (c) => c.charCodeAt(0)); }
  function b32(text) {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const out = []; let bits = 0, value = 0;
    for (const ch of text) {
      const v = alphabet.indexOf(ch); if (v < 0) return null;
      value = (value << 5) | v; bits += 5;
      if (bits >= 8) { out.push((value >>> (bits - 8)) & 255); bits -= 8; }
    }
    return new Uint8Array(out);
  }

  async function useList(doc) {
    const keys = new Map();
    for (const k of doc.keys) {
      try { keys.set(k.kid, await crypto.subtle.importKey("raw", b64(k.public_key), { name: "Ed25519" }, false, ["verify"])); }
      catch { /* a browser without Ed25519: offline scans of QR codes say so */ }
    }
    const tickets = new Map(doc.tickets.map((row) => [row[0], row]));
    for (const p of pending) {  // check-ins not synced yet stay used here
      const read = parseCode(p.code);
      const row = read && tickets.get(read.serial);
      if (row && row[2] === "v") { row[2] = "u"; row[6] = p.at; row[7] = gateInput.value; }
    }
    list = { version: doc.version, keys, tickets, packages: doc.packages, seats: doc.seats };
    root.dataset.listVersion = doc.version;
  }

  async function refreshList() {
    try {
      const headers = list ? { "If-None-Match": `"${list.version}"` } : {};
      const resp = await call(`/api/events/${eventId}/gate/list`, { headers }, 15000);
      if (resp.status === 200) {
        const doc = await resp.json();
        save("list", doc);
        await useList(doc);
      }
    } catch { /* keep the list we have */ }
  }

  // as strict as the server's reading (engine/tickets/payload.py, engine/checkin/desk.py): a code
  // the server would refuse must not be admitted and queued here, or every sync of this device
  // would be refused with it and its check-ins never reach the server
  const PAYLOAD = /^KW1\.([A-Z0-9]{1,8})\.([1-9]\d{0,18})\.([0-9A-Z]{4,24})\.([1-9]\d{0,18}|)\.(0|[1-9]\d{0,9})\.([A-Z2-7]{103})$/;
  function parseCode(code) {
    const typed = /^TKT-([1-9]\d{0,18})-([0-9A-Z]{4,24})$/.exec(code.toUpperCase());
    if (typed) return { event: Number(typed[1]), serial: typed[2], gen: null };
    const m = PAYLOAD.exec(code);
    // 103 base32 characters carry 515 bits: the last one's 3 unused bits must be zero
    if (!m || "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".indexOf(m[6].slice(-1)) & 7) return null;
    return { event: Number(m[2]), serial: m[3], gen: Number(m[5]), kid: m[1],
             head: code.slice(0, code.lastIndexOf(".")), signature: m[6] };
  }

  async function scanOffline(code) {
    const read = parseCode(code);
    if (!read) return show("malformed");
    if (read.event !== eventId) return show("wrong_event");
    if (!list) return show("unknown", null, " (no list on this device yet)");
    if (read.gen !== null) {
      const key = list.keys.get(read.kid), signature = b32(read.signature);
      let genuine = false;
      try {
        genuine = !!key && !!signature && signature.length === 64 &&
          await crypto.subtle.verify({ name: "Ed25519" }, key, signature, new TextEncoder().encode(read.head));
      } catch { genuine = false; }
      if (!genuine) return show("forged");
    }
    const row = list.tickets.get(read.serial);
    const ticket = row && { attendee: row[3], package: list.packages[row[4]], seat: list.seats[row[5]] || null,
                            checked_in_at: row[6], gate: row[7] };
    if (!row) return show("unknown");
    if (row[2] !== "v" && row[2] !== "u") return show(STATUS[row[2]] || "unknown", ticket);
    if (read.gen !== null && read.gen !== row[1]) return show("revoked", ticket);
    const now = Date.now(), gate = gateInput.value;
    if (row[2] === "u") return show(row[7] === gate && now - row[6] <= REPEAT_MS ? "repeat" : "used", ticket);
    row[2] = "u"; row[6] = now; row[7] = gate;
    pending.push({ id: `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`, code, at: now });
    save("pending", pending); showPending();
    bump(gate);
    show("admitted", ticket, " (offline)");
  }

  function markLocal(answer) {
    const t = answer.ticket;
    if (!list || !t) return;
    const row = list.tickets.get(t.ticket_number.split("-")[2]);
    if (row && t.status === "used") { row[2] = "u"; row[6] = t.checked_in_at; row[7] = t.gate; }
  }

  // --- scanning ---------------------------------------------------------------------------
  async function scan(code) {
    code = code.trim();
    if (!code) return;
    const gate = gateInput.value.trim() || "Main";
    if (online) {
      try {
        const resp = await call("/api/scan", { method: "POST", body: JSON.stringify({ event_id: eventId, code, gate }) });
        if (resp.ok) {
          const answer = await resp.json();
          markLocal(answer);
          return show(answer.result, answer.ticket);
        }
        if (resp.status === 422) return show("malformed");
        if (resp.status < 500 && resp.status !== 429) return show("unknown", null, ` (the server said ${resp.status}: log in again?)`);
      } catch { /* no network: below */ }
      setOnline(false);
    }
    await scanOffline(code);
  }

  async function sync() {
    if (syncing || !pending.length) return showPending();
    syncing = true;
    try {
      while (pending.length) {
        const batch = pending.slice(0, 200);
        const resp = await call(`/api/events/${eventId}/gate/sync`, { method: "POST",
          body: JSON.stringify({ gate: gateInput.value.trim() || "Main", items: batch }) }, 15000);
        if (!resp.ok) break;
        const answer = await resp.json();
        const done = new Set(batch.map((b) => b.id));
        pending = pending.filter((p) => !done.has(p.id));
        save("pending", pending);
        conflicts(answer.results.filter((r) => !["admitted", "duplicate"].includes(r.result)));
      }
    } catch { setOnline(false); }
    finally { syncing = false; showPending(); }
  }

  function conflicts(found) {
    if (!found.length) return;
    const box = root.querySelector("[data-conflicts-box]"), ul = root.querySelector("[data-conflicts]");
    box.hidden = false;
    for (const r of found) {
      const li = document.createElement("li");
      const t = r.ticket || {};
      const text = r.result === "first"
        ? `${t.ticket_number}: scanned here first; also admitted at gate ${r.was && r.was.gate} at ${clock(r.was && r.was.checked_in_at)}`
        : r.result === "conflict"
          ? `${t.ticket_number || ""}: already in at gate ${t.gate} at ${clock(t.checked_in_at)}; admitted here again offline`
          : `${t.ticket_number || "A code"}: ${WORDS[r.result] || r.result}, but admitted offline`;
      li.textContent = text;
      ul.prepend(li);
    }
  }

  // --- counts -----------------------------------------------------------------------------
  let counts = { checked_in: 0, expected: 0, gates: {} };
  function showCounts(c) {
    counts = c;
    root.querySelector("[data-in]").textContent = c.checked_in.toLocaleString();
    root.querySelector("[data-expected]").textContent = c.expected.toLocaleString();
    const ul = root.querySelector("[data-gates]");
    ul.replaceChildren(...Object.entries(c.gates).map(([name, n]) => {
      const li = document.createElement("li"); li.textContent = `${name}: ${n.toLocaleString()}`; return li;
    }));
  }
  function bump(gate) {
    const gates = { ...counts.gates, [gate]: (counts.gates[gate] || 0) + 1 };
    showCounts({ ...counts, checked_in: counts.checked_in + 1, gates });
  }
  let source = null, poller = null;
  async function poll() {
    try {
      const resp = await call(`/api/events/${eventId}/gate/counts`);
      if (resp.ok) { showCounts(await resp.json()); if (!online) setOnline(true); }
    } catch { if (online) setOnline(false); }
  }
  function live() {
    if (document.hidden) return;
    if ("EventSource" in window) {
      source = new EventSource(`/events/${eventId}/gate/live`);
      source.onmessage = (e) => { showCounts(JSON.parse(e.data)); if (!online) setOnline(true); };
      source.onerror = () => { if (!poller) poller = setInterval(poll, 5000); };
      source.onopen = () => { if (poller) { clearInterval(poller); poller = null; } };
    } else {
      poller = setInterval(poll, 5000); poll();
    }
  }
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) { if (source) source.close(); source = null; if (poller) clearInterval(poller); poller = null; }
    else live();
  });

  // --- camera -----------------------------------------------------------------------------
  const cameraButton = $("[data-camera]"), video = $("[data-video]");
  if ("BarcodeDetector" in window && navigator.mediaDevices) {
    cameraButton.hidden = false;
    let running = false, last = "", lastAt = 0;
    cameraButton.addEventListener("click", async () => {
      if (running) { running = false; video.srcObject.getTracks().forEach((t) => t.stop()); video.hidden = true;
        cameraButton.textContent = "Use camera"; return; }
      try {
        video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
      } catch { return show("unknown", null, " (the camera is not available)"); }
      video.hidden = false; await video.play(); running = true; cameraButton.textContent = "Stop camera";
      const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
      const tick = async () => {
        if (!running) return;
        try {
          const [found] = await detector.detect(video);
          if (found && (found.rawValue !== last || Date.now() - lastAt > 3000)) {
            last = found.rawValue; lastAt = Date.now();
            await scan(found.rawValue);
          }
        } catch { /* a frame that could not be read */ }
        setTimeout(tick, 250);
      };
      tick();
    });
  }

  // --- search, manual check-in, undo ------------------------------------------------------
  const found = $("[data-found]");
  $("[data-search-form]").addEventListener("submit", async (e) => {
    e.preventDefault();
    const q = e.target.elements.q.value.trim();
    if (q.length < 2) return;
    let rows = [];
    try {
      const resp = await call(`/api/events/${eventId}/gate/search?q=${encodeURIComponent(q)}`);
      rows = resp.ok ? await resp.json() : [];
    } catch { rows = []; }
    found.replaceChildren(...(rows.length ? rows.map(row) : [Object.assign(document.createElement("li"), { textContent: "No ticket found." })]));
  });
  function row(t) {
    const li = document.createElement("li");
    const text = document.createElement("div");
    const name = document.createElement("strong"); name.textContent = t.attendee;
    const detail = document.createElement("div");
    detail.textContent = [t.ticket_number, t.package, t.seat, t.email,
      t.status === "used" ? `in at ${clock(t.checked_in_at)}, gate ${t.gate}` : t.status].filter(Boolean).join(" · ");
    text.append(name, detail);
    li.append(text);
    const act = (label, fn) => { const b = document.createElement("button"); b.type = "button"; b.textContent = label;
      b.addEventListener("click", fn); li.append(b); };
    if (t.status === "valid") act("Check in", async () => {
      const resp = await call(`/api/events/${eventId}/gate/checkin`, { method: "POST",
        body: JSON.stringify({ ticket_number: t.ticket_number, gate: gateInput.value.trim() || "Main" }) });
      if (resp.ok) { const a = await resp.json(); markLocal(a); show(a.result, a.ticket); li.remove(); }
    });
    if (t.status === "used" && isProvider) act("Undo check-in", async () => {
      const resp = await call(`/api/events/${eventId}/gate/undo`, { method: "POST",
        body: JSON.stringify({ ticket_number: t.ticket_number }) });
      if (resp.ok) { li.remove(); verdict.textContent = `Check-in of ${t.ticket_number} taken back.`; }
    });
    return li;
  }

  // --- start ------------------------------------------------------------------------------
  gateInput.value = localStorage.getItem("kwika.gate.name") || gateInput.value;
  gateInput.addEventListener("change", () => localStorage.setItem("kwika.gate.name", gateInput.value.trim()));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const code = input.value;
    input.value = "";
    input.focus();
    scan(code);
  });
  window.addEventListener("online", () => setOnline(true));
  window.addEventListener("offline", () => setOnline(false));
  setInterval(() => { if (!online) poll(); else if (!document.hidden) refreshList(); }, 30000);
  showPending();
  const kept = load("list", null);
  (kept ? useList(kept) : Promise.resolve()).then(() => { root.dataset.ready = "1"; refreshList().then(() => { root.dataset.listed = "1"; }); });
  live();
  if (online) sync();
})();
