// The waiting room's queue page: join the line (solving the server's proof-of-work challenge),
// then follow the place live (Server-Sent Events, polling when they fail, paused while the tab
// is hidden) and move on to the event page when it is this visitor's turn.
(() => {
  "use strict";
  const root = document.querySelector('[data-testid="room"]');
  if (!root) return;
  const id = root.dataset.eventId;
  const api = `/api/events/${id}/room`;
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const $ = (sel) => root.querySelector(sel);
  const POLL_SECONDS = 5;
  let source = null, poller = null, joining = false, leaving = false;

  const minutes = (s) => (s == null ? "–" : s < 60 ? "under a minute" : `${Math.round(s / 60)} min`);

  function show(s) {
    root.dataset.place = s.place;
    root.dataset.state = s.state;
    $('[data-testid="room-message"]').textContent = s.message || "Getting your place in line…";
    $('[data-testid="room-ahead"]').textContent = s.ahead == null ? "–" : s.ahead.toLocaleString();
    $('[data-testid="room-wait"]').textContent = minutes(s.wait_seconds);
    const bar = $('[data-testid="room-progress"]');
    bar.value = Math.round(s.progress * 100);
    bar.textContent = `${bar.value}%`;
    const next = $('[data-testid="room-next"]');
    next.hidden = !s.next && s.place !== "used";
    if (s.next) next.querySelector("a").href = s.next;
    $('[data-testid="room-rejoin"]').hidden = s.place !== "used";
    if (s.state === "off" || s.place === "admitted") return go(s);
    if (s.place === "none" && !["sold_out", "not_on_sale"].includes(s.state)) join();
  }

  async function go(s) {
    if (leaving) return;
    leaving = true;
    stop();
    if (s.place === "admitted") await fetch(api, { credentials: "same-origin" }); // the pass cookie
    window.location.assign(s.next || `/events/${root.dataset.eventSlug}`);
  }

  async function zeros(bytes) {
    let n = 0;
    for (const b of new Uint8Array(bytes)) {
      if (b === 0) { n += 8; continue; }
      return n + Math.clz32(b) - 24;
    }
    return n;
  }

  async function solve(challenge, difficulty) {
    const enc = new TextEncoder();
    for (let start = 0; ; start += 256) {
      const tries = [];
      for (let i = start; i < start + 256; i++) {
        tries.push(crypto.subtle.digest("SHA-256", enc.encode(`${challenge}:${i}`)));
      }
      const digests = await Promise.all(tries);
      for (let i = 0; i < digests.length; i++) {
        if (await zeros(digests[i]) >= difficulty) return String(start + i);
      }
    }
  }

  async function join(again = false) {
    if (joining) return;
    joining = true;
    try {
      $('[data-testid="room-message"]').textContent = "Joining the line…";
      const got = await fetch(`${api}/challenge`, { credentials: "same-origin" });
      const c = await got.json();
      if (!got.ok) { $('[data-testid="room-message"]').textContent = c.message; return; }
      const solution = await solve(c.challenge, c.difficulty);
      const joined = await fetch(`${api}/join`, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ challenge: c.challenge, solution }),
      });
      const answer = await joined.json();
      if (!joined.ok) { $('[data-testid="room-message"]').textContent = answer.message; return; }
      show(answer);
      if (again) listen();
    } catch (err) {
      $('[data-testid="room-message"]').textContent = "We could not reach the line just now; trying again shortly.";
    } finally {
      joining = false;
    }
  }

  async function poll() {
    try {
      const got = await fetch(api, { credentials: "same-origin" });
      if (got.ok) {
        const s = await got.json();
        show(s);
        return s;
      }
    } catch (err) { /* offline for a moment: the next poll tries again */ }
    return null;
  }

  function stop() {
    if (source) { source.close(); source = null; }
    if (poller) { clearTimeout(poller); poller = null; }
  }

  // polling when live updates fail: as often as the server says (seldom far back in the line)
  async function pollLoop() {
    const s = await poll();
    if (leaving || document.hidden || source) return;
    poller = setTimeout(pollLoop, ((s && s.poll_seconds) || POLL_SECONDS) * 1000);
  }

  function listen() {
    stop();
    if (!("EventSource" in window)) { pollLoop(); return; }
    source = new EventSource(`/events/${id}/room/live`);
    source.onmessage = (e) => show(JSON.parse(e.data));
    source.onerror = () => {
      if (source && source.readyState === EventSource.CLOSED) {
        source = null;
        if (!poller) pollLoop();
      }
    };
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) stop();
    else { poll(); listen(); }
  });
  root.querySelector('[data-action="rejoin"]').addEventListener("click", () => join(true));
  poll().then(listen);
})();
