// The provider's waiting-room page: its figures refresh by themselves every 2 s (paused while the
// tab is hidden); the forms work without this script.
(() => {
  "use strict";
  const root = document.querySelector('[data-testid="room-control"]');
  if (!root) return;
  const url = `/api/provider/events/${root.dataset.eventId}/room`;
  async function refresh() {
    if (document.hidden) return;
    try {
      const got = await fetch(url, { credentials: "same-origin" });
      if (!got.ok) return;
      const room = await got.json();
      for (const dd of root.querySelectorAll("[data-figure]")) {
        const value = room[dd.dataset.figure];
        if (dd.dataset.figure === "clear_seconds") {
          dd.textContent = value == null ? "–" : `${Math.floor(value / 60)} min`;
        } else {
          dd.textContent = Number(value).toLocaleString();
        }
      }
    } catch (err) { /* the next round tries again */ }
  }
  setInterval(refresh, 2000);
})();
