// The event page's pickers: − / + steppers with a live total, Continue through the JSON holds
// API (one Idempotency-Key per page view, reused on retries and double clicks), and live
// availability by Server-Sent Events with a polling fallback, paused while the tab is hidden.
// Without this file the page is a plain form that posts to /events/{slug}/hold.
const form = document.getElementById("pick");
if (form) start(form);

function start(form) {
  document.documentElement.classList.add("js");
  const words = JSON.parse(form.dataset.words || "{}");
  const eventId = form.dataset.eventId;
  const currency = form.dataset.currency;
  const exponent = Number(form.dataset.exponent);
  const maxTotal = Number(form.dataset.maxTotal);
  const key = form.elements.idempotency_key.value;
  const problem = document.getElementById("pick-problem");
  const totalOut = document.querySelector("[data-testid=total]");
  const button = document.querySelector("[data-testid=continue]");
  const rows = [...form.querySelectorAll(".pkg-row")];
  let seats = [];  // [{id, price, package_id, label}] from seatmap.js
  let pending = false;

  const money = (minor) => {
    const sign = minor < 0 ? "-" : "";
    const abs = Math.abs(minor);
    const major = Math.floor(abs / 10 ** exponent).toLocaleString("en-US");
    const frac = exponent ? "." + String(abs % 10 ** exponent).padStart(exponent, "0") : "";
    return `${sign}${currency} ${major}${frac}`;
  };
  const say = (code, fields = {}) => (words[code] || words.network || code)
    .replace(/\{(\w+)\}/g, (_, k) => fields[k] ?? "");
  const showProblem = (text) => {
    problem.textContent = text || "";
    problem.hidden = !text;
  };

  const input = (row) => row.querySelector("input[type=number]");
  const gaCount = () => rows.reduce((n, r) => n + (input(r) ? Number(input(r).value) || 0 : 0), 0);
  const chosenTotal = () => gaCount() + seats.length;

  function refresh() {
    let amount = 0;
    for (const row of rows) {
      const box = input(row);
      if (!box) continue;
      const value = Number(box.value) || 0;
      amount += value * Number(row.dataset.price);
      const least = Number(row.dataset.least), most = Number(row.dataset.most);
      const [minus, plus] = row.querySelectorAll(".step");
      minus.disabled = value <= 0;
      plus.disabled = box.disabled || (value === 0 ? least > most : value >= most) || chosenTotal() >= maxTotal;
    }
    for (const seat of seats) amount += seat.price;
    const count = chosenTotal();
    totalOut.textContent = count
      ? `${count} ticket${count === 1 ? "" : "s"} · ${money(amount)}`
      : (button ? "Choose your tickets" : "");
    form.dataset.gaCount = String(gaCount());
    const summary = totalOut.closest(".summary");
    if (summary) summary.dataset.count = String(count);
  }

  function setQuantity(row, value) {
    const least = Number(row.dataset.least), most = Number(row.dataset.most);
    if (value > 0 && value < least) value = least;
    if (value > most) value = most;
    if (value < least) value = 0;
    input(row).value = String(Math.max(0, value));
    refresh();
  }

  for (const row of rows) {
    const box = input(row);
    if (!box) continue;
    for (const step of row.querySelectorAll(".step")) {
      step.hidden = false;
      step.addEventListener("click", () => {
        const value = Number(box.value) || 0;
        const least = Number(row.dataset.least);
        if (step.dataset.step === "1") setQuantity(row, value === 0 ? least : value + 1);
        else setQuantity(row, value <= least ? 0 : value - 1);
      });
    }
    box.addEventListener("change", () => setQuantity(row, Math.floor(Number(box.value) || 0)));
  }

  document.addEventListener("kwika:seats", (e) => { seats = e.detail.seats; refresh(); });
  document.addEventListener("kwika:problem", (e) => showProblem(say(e.detail.code, e.detail.fields)));

  // --- Continue: hold through the JSON API, then the basket -------------------------------
  async function post(url, body, idempotencyKey) {
    const headers = {"Content-Type": "application/json", "Accept": "application/json",
                     "Idempotency-Key": idempotencyKey};
    const csrf = document.querySelector("meta[name=csrf-token]");
    if (csrf && csrf.content) headers["X-CSRF-Token"] = csrf.content;
    for (let attempt = 0; ; attempt++) {
      try {
        const resp = await fetch(url, {method: "POST", headers, body: JSON.stringify(body),
                                       credentials: "same-origin"});
        return {status: resp.status, body: await resp.json().catch(() => ({}))};
      } catch (err) {  // no answer: the same key makes a retry the same hold
        if (attempt >= 2) return {status: 0, body: {error: "network"}};
        await new Promise((done) => setTimeout(done, 500 * (attempt + 1)));
      }
    }
  }

  async function hold(url, body, idempotencyKey, busy) {
    if (pending) return;
    pending = true;
    const label = busy.textContent;
    busy.disabled = true;
    busy.textContent = "Holding your tickets…";
    showProblem("");
    const answer = await post(url, body, idempotencyKey);
    if (answer.status === 201 && answer.body.id) {
      location.assign("/holds/" + encodeURIComponent(answer.body.id));
      return;
    }
    const {error = "network", fields = {}} = answer.body;
    if (error === "seat_unavailable" && fields.seat_ids) {
      document.dispatchEvent(new CustomEvent("kwika:taken", {
        detail: {seatIds: fields.seat_ids.split(",").map((s) => Number(s.trim()))}}));
    }
    showProblem(words[error] ? say(error, fields)
      : answer.status && answer.body.message ? answer.body.message : say("network"));
    busy.disabled = false;
    busy.textContent = label;
    pending = false;
    problem.scrollIntoView({block: "center"});
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const items = rows.filter((r) => input(r) && Number(input(r).value) > 0)
      .map((r) => ({package_id: Number(r.dataset.packageId), quantity: Number(input(r).value)}));
    if (!items.length && !seats.length) { showProblem(say("empty")); return; }
    hold(`/api/events/${eventId}/holds`, {items, seat_ids: seats.map((s) => s.id)}, key,
         button || e.submitter);
  });

  const best = document.querySelector("form.best");
  if (best) {
    best.addEventListener("submit", (e) => {
      e.preventDefault();
      const body = {quantity: Number(best.elements.quantity.value)};
      if (best.elements.section_id.value) body.section_id = Number(best.elements.section_id.value);
      if (best.elements.price_max.value) body.price_max = Number(best.elements.price_max.value);
      hold(`/api/events/${eventId}/best-available`, body, best.elements.idempotency_key.value,
           best.querySelector("button[type=submit]"));
    });
  }

  // --- live availability ------------------------------------------------------------------
  function fewLeft(available, capacity) {
    return available > 0 && available <= Math.max(10, Math.floor(capacity / 10));
  }
  function fallbackWords(row, state, available) {
    if (state === "sold_out") return "Sold out";
    if (state === "closed") return "Sale ended";
    if (state === "paused") return "Paused";
    if (state === "upcoming") return row.querySelector(".pkg-state").textContent;
    return fewLeft(available, Number(row.dataset.capacity)) ? `${available.toLocaleString("en-US")} left` : "On sale";
  }

  function applyPackage(row, pkg) {
    const state = row.querySelector(".pkg-state");
    row.dataset.state = pkg.state;
    state.className = `pkg-state state-${pkg.state}`;
    state.textContent = pkg.words ?? fallbackWords(row, pkg.state, pkg.available);
    const box = input(row);
    if (pkg.most !== undefined) row.dataset.most = String(pkg.most);
    if (box) {
      const most = Number(row.dataset.most);
      box.max = String(most);
      box.disabled = pkg.state !== "on_sale" || most < Math.max(1, Number(row.dataset.least));
      if (Number(box.value) > most) setQuantity(row, most);
    }
  }

  function applyLive(message) {
    for (const row of rows) {
      const pkg = message.packages[row.dataset.packageId];
      if (pkg) applyPackage(row, pkg);
    }
    document.dispatchEvent(new CustomEvent("kwika:live", {detail: message}));
    refresh();
  }

  let source = null, pollTimer = null, failures = 0;
  function openStream() {
    if (!("EventSource" in window) || failures >= 3) { poll(); return; }
    source = new EventSource(form.dataset.live);
    source.onopen = () => clearTimeout(pollTimer);
    source.onmessage = (e) => { failures = 0; applyLive(JSON.parse(e.data)); };
    source.onerror = () => {  // refused (429/503: too many streams) or gone: poll meanwhile
      if (source.readyState === EventSource.CLOSED) {
        failures += 1;
        source = null;
        if (!document.hidden) { poll(); if (failures < 3) setTimeout(openStream, 3000 * failures); }
      }
    };
  }
  async function poll() {  // the fallback: the event's JSON every 10 s
    clearTimeout(pollTimer);
    if (document.hidden) return;
    try {
      const resp = await fetch(`/api/events/${encodeURIComponent(form.dataset.slug)}`, {headers: {Accept: "application/json"}});
      if (resp.ok) {
        const event = await resp.json();
        const packages = {};
        for (const p of event.packages) {
          packages[p.id] = {available: p.available, state: p.sale_state};
          const row = rows.find((r) => r.dataset.packageId === String(p.id));
          if (row) {
            const caps = [p.max_per_order, p.per_buyer_limit || p.max_per_order, event.max_tickets_per_buyer, p.available];
            packages[p.id].most = p.sale_state === "on_sale" ? Math.max(0, Math.min(...caps)) : 0;
          }
        }
        applyLive({v: 1, full: false, poll: true, status: event.sale_status, packages, seats: {}});
      }
    } catch (_) { /* try again at the next tick */ }
    if (!source) pollTimer = setTimeout(poll, 10000);  // a stream open again takes over
  }
  function stop() {
    if (source) { source.close(); source = null; }
    clearTimeout(pollTimer);
  }
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) stop();
    else if (!source) openStream();
  });
  openStream();
  refresh();
}
