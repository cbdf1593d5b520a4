// Small progressive enhancements; every page works without this file.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  try {
    await navigator.clipboard.writeText(button.dataset.copy);
    button.textContent = "Link copied";
  } catch (_) {
    window.prompt("Copy this link", button.dataset.copy);
  }
});
