// The sandbox's hosted pages: "Use" buttons for the test cards, and pages that wait (a phone,
// a transfer) follow the payment by polling and move on once it is over. Works without it:
// the card can be typed, and waiting pages refresh themselves (<noscript> meta refresh).
for (const button of document.querySelectorAll("[data-card]")) {
  button.hidden = false;
  button.addEventListener("click", () => {
    const fill = (id, value) => { const input = document.getElementById(id); if (input && !input.value) input.value = value; };
    document.getElementById("f-card_number").value = button.dataset.card.replace(/(\d{4})(?=\d)/g, "$1 ");
    fill("f-expiry", "12/34");
    fill("f-cvc", "123");
    document.getElementById("f-card_number").focus();
  });
}

const waiting = document.querySelector("[data-poll]");
if (waiting) {
  const url = waiting.dataset.poll;
  let timer = null;
  const poll = async () => {
    timer = null;
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
      if (response.ok) {
        const state = await response.json();
        if (state.final || state.stage !== waiting.dataset.stage) { window.location.replace(state.url); return; }
      }
    } catch (_) { /* offline for a moment: try again */ }
    schedule();
  };
  const schedule = () => { if (!document.hidden && timer === null) timer = setTimeout(poll, 1000); };
  document.addEventListener("visibilitychange", () => {
    if (document.hidden && timer !== null) { clearTimeout(timer); timer = null; } else schedule();
  });
  schedule();
}
