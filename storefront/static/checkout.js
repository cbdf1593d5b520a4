// The buying pages (templates/buy/): the hold's countdown from the server's clock, the payment
// page following its payment, and small conveniences on the checkout form. Every page works
// without this file (meta refresh, "Check again", all fields shown).

// --- countdown: the server sends its own time beside the expiry; we count with that offset ---
for (const box of document.querySelectorAll("[data-countdown]")) {
  const expires = Date.parse(box.dataset.expires);
  const offset = Date.parse(box.dataset.now) - Date.now();  // server clock minus ours
  const clock = box.querySelector("[data-left]");
  const expired = box.parentElement.querySelector("[data-expired]");
  let timer = null;
  const tick = () => {
    const left = expires - (Date.now() + offset);
    const seconds = Math.max(0, Math.ceil(left / 1000));
    clock.textContent = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
    box.classList.toggle("co-low", seconds <= 120);
    if (left <= -500) {  // the server releases the hold at its expiry: ask it, and show its answer
      clearInterval(timer);
      if (expired) expired.hidden = false;
      for (const button of document.querySelectorAll("[data-checkout] button[type=submit]")) button.disabled = true;
      window.location.replace(window.location.href);
    }
  };
  tick();
  timer = setInterval(tick, 250);
}

// --- checkout form ---
const form = document.querySelector("[data-checkout]");
if (form) {
  const same = form.querySelector("[data-same]");
  const attendees = form.querySelector("[data-attendees]");
  const hint = form.querySelector("[data-nojs-hint]");
  if (hint) hint.hidden = true;
  const showAttendees = () => {
    if (!same || !attendees) return;
    attendees.hidden = same.checked;
    for (const input of attendees.querySelectorAll("input")) input.disabled = same.checked;
  };
  if (same) { same.addEventListener("change", showAttendees); showAttendees(); }

  const momo = form.querySelector("[data-when-method=mobile_money]");
  const showMethod = () => {
    if (!momo) return;
    const chosen = form.querySelector("input[name=method]:checked");
    const on = chosen !== null && chosen.value === "mobile_money";
    momo.hidden = !on;
    for (const input of momo.querySelectorAll("input")) input.disabled = !on;
  };
  for (const radio of form.querySelectorAll("input[name=method]")) radio.addEventListener("change", showMethod);
  showMethod();

  // one click, one payment: the server refuses a second attempt anyway
  form.addEventListener("submit", (event) => {
    const button = form.querySelector("button[type=submit]");
    if (button.getAttribute("aria-disabled") === "true") { event.preventDefault(); return; }
    button.setAttribute("aria-disabled", "true");
    button.textContent = "Working…";
  });
  window.addEventListener("pageshow", (event) => {  // back to a page kept in the cache
    if (!event.persisted) return;
    const button = form.querySelector("button[type=submit]");
    button.removeAttribute("aria-disabled");
    window.location.replace(window.location.href);
  });
}

// the order summary starts folded on a phone
const summary = document.querySelector("[data-summary]");
if (summary && window.matchMedia("(max-width: 799px)").matches) summary.open = false;

// --- payment page: follow the payment until it is over, then show the server's answer ---
const waiting = document.querySelector("[data-poll]");
if (waiting) {
  const url = waiting.dataset.poll;
  const shown = waiting.dataset.status;
  let timer = null;
  const poll = async () => {
    timer = null;
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
      if (response.ok) {
        const order = await response.json();
        if (order.status !== shown) { window.location.replace(window.location.href); return; }
      } else if (response.status === 404) { window.location.replace(window.location.href); return; }
    } catch (_) { /* offline for a moment: try again */ }
    schedule();
  };
  const schedule = () => { if (!document.hidden && timer === null) timer = setTimeout(poll, 1500); };
  document.addEventListener("visibilitychange", () => {
    if (document.hidden && timer !== null) { clearTimeout(timer); timer = null; } else schedule();
  });
  schedule();
}
