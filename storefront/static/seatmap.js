// The seat map of a seated event: an SVG drawn from GET /api/events/{id}/seating (sections laid
// out in rows and seats around a stage marker), seats coloured by price band with a legend,
// unavailable seats greyed and hatched, click or tap to choose, zoom (buttons, wheel, pinch) and
// pan (drag); a tooltip on hover and focus. A list view of the same seats (a table of
// checkboxes, filtered by section and price) is the keyboard and screen-reader path. The chosen
// seats go to picker.js as a `kwika:seats` event; live seat states arrive as `kwika:live`.
const root = document.getElementById("seats");
const form = document.getElementById("pick");
if (root && form) start(root, form);

const SVGNS = "http://www.w3.org/2000/svg";
const BANDS = ["#2563eb", "#059669", "#c2410c", "#db2777", "#7c3aed", "#0e7490", "#4d7c0f", "#b45309"];
const SEAT = 22, GAP = 6, PITCH = SEAT + GAP, LABEL = 28, SECTION_GAP = 48, STAGE_H = 40;

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(SVGNS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.append(node);
  return node;
}
function h(name, attrs = {}, text = "") {
  const node = document.createElement(name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}
const rowKey = (label) => {
  const m = /^(\D*)(\d*)$/.exec(label || "");
  return m ? [m[1].length, m[1], Number(m[2] || 0)] : [0, label, 0];
};
const compareRows = (a, b) => {
  const x = rowKey(a), y = rowKey(b);
  return x[0] - y[0] || (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0) || x[2] - y[2];
};

async function start(root, form) {
  const currency = form.dataset.currency, exponent = Number(form.dataset.exponent);
  const money = (minor) => `${currency} ${Math.floor(minor / 10 ** exponent).toLocaleString("en-US")}` +
    (exponent ? "." + String(minor % 10 ** exponent).padStart(exponent, "0") : "");
  const mapBox = root.querySelector(".seat-map");
  const listBox = root.querySelector(".seat-list");
  const legendBox = root.querySelector(".legend");
  const chosenList = root.querySelector("[data-testid=selected-seats]");
  const emptyNote = root.querySelector("[data-empty]");
  const rowsByPackage = new Map([...form.querySelectorAll(".pkg-row")].map((r) => [r.dataset.packageId, r]));
  const seats = new Map();  // id -> {id, label, section, row, number, price, package_id, state, node}
  const selected = new Set();
  let bands = [];

  let data;
  try {
    const resp = await fetch(root.dataset.seating, {headers: {Accept: "application/json"}});
    if (!resp.ok) throw new Error(String(resp.status));
    data = await resp.json();
  } catch (_) {
    mapBox.querySelector(".loading").textContent = "The seat map could not be loaded. Use “Best available” below.";
    return;
  }
  root.querySelector(".seat-tools").hidden = false;

  // --- layout -------------------------------------------------------------------------------
  const sections = [...data.sections].sort((a, b) => a.sort_order - b.sort_order || a.id - b.id);
  const blocks = sections.map((section) => {
    const byRow = new Map();
    for (const seat of section.seats) {
      const key = seat.row ?? "";
      if (!byRow.has(key)) byRow.set(key, []);
      byRow.get(key).push(seat);
    }
    const rowLabels = [...byRow.keys()].sort(compareRows);
    let cols = 0;
    for (const label of rowLabels) {
      const list = byRow.get(label);
      list.sort((a, b) => (a.column ?? 0) - (b.column ?? 0) || compareRows(a.seat_number, b.seat_number));
      list.forEach((seat, i) => { seat._col = seat.column ?? i + 1; cols = Math.max(cols, seat._col); });
    }
    return {section, rowLabels, byRow, width: LABEL + cols * PITCH, height: LABEL + rowLabels.length * PITCH};
  });
  // tiers of up to three sections: the first in the middle nearest the stage, then left, right
  const tiers = [];
  for (let i = 0; i < blocks.length; i += 3) {
    const tier = blocks.slice(i, i + 3);
    tiers.push(tier.length === 3 ? [tier[1], tier[0], tier[2]] : tier.length === 2 ? [tier[1], tier[0]] : tier);
  }
  const width = Math.max(400, ...tiers.map((t) => t.reduce((w, b) => w + b.width, 0) + SECTION_GAP * (t.length - 1)));
  let y = STAGE_H + SECTION_GAP;
  for (const tier of tiers) {
    const tierWidth = tier.reduce((w, b) => w + b.width, 0) + SECTION_GAP * (tier.length - 1);
    let x = (width - tierWidth) / 2;
    for (const block of tier) { block.x = x; block.y = y; x += block.width + SECTION_GAP; }
    y += Math.max(...tier.map((b) => b.height)) + SECTION_GAP;
  }
  const height = y;
  const prices = [...new Set(sections.flatMap((s) => s.seats.map((seat) => seat.price)))].sort((a, b) => a - b);
  bands = prices.map((price, i) => ({price, colour: BANDS[i % BANDS.length]}));
  const colourOf = (price) => bands.find((b) => b.price === price).colour;

  // --- drawing ------------------------------------------------------------------------------
  const svg = el("svg", {viewBox: `0 0 ${width} ${height}`, role: "group", "aria-label": "Seat map",
                         "data-testid": "seat-svg"});
  const defs = el("defs", {}, svg);
  const hatch = el("pattern", {id: "seat-hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse",
                               patternTransform: "rotate(45)"}, defs);
  el("rect", {width: 6, height: 6, fill: "#d1d5db"}, hatch);
  el("line", {x1: 0, y1: 0, x2: 0, y2: 6, stroke: "#6b7280", "stroke-width": 2}, hatch);
  const stageW = Math.min(width * 0.6, 360);
  el("rect", {class: "stage", x: (width - stageW) / 2, y: 0, width: stageW, height: STAGE_H, rx: 8}, svg);
  el("text", {class: "stage-label", x: width / 2, y: STAGE_H / 2 + 5, "text-anchor": "middle"}, svg).textContent = "Stage";
  for (const block of blocks) {
    const g = el("g", {transform: `translate(${block.x} ${block.y})`, "data-section": block.section.id}, svg);
    el("text", {class: "section-label", x: LABEL, y: 16}, g).textContent = block.section.name;
    block.rowLabels.forEach((label, r) => {
      const cy = LABEL + r * PITCH + SEAT / 2;
      if (label) el("text", {class: "row-label", x: 0, y: cy + 4}, g).textContent = label;
      for (const seat of block.byRow.get(label)) {
        const state = seat.status === "reserved" ? "held" : seat.status;
        const info = {id: seat.id, section: block.section.name, row: seat.row || "", number: seat.seat_number,
                      price: seat.price, package_id: block.section.package_id, state, rowIndex: r,
                      sectionId: block.section.id};
        info.label = `${info.section}, ${info.row ? `row ${info.row}, ` : ""}seat ${info.number}`;
        info.node = el("circle", {class: "seat", cx: LABEL + (seat._col - 1) * PITCH + SEAT / 2, cy, r: SEAT / 2,
                                  role: "checkbox", tabindex: "-1", "data-seat-id": seat.id}, g);
        seats.set(seat.id, info);
        paint(info);
      }
    });
  }
  mapBox.replaceChildren(svg);
  const tooltip = h("div", {class: "tooltip", role: "tooltip", id: "seat-tooltip", hidden: ""});
  mapBox.append(tooltip);
  const ordered = [...seats.values()];
  const firstFree = ordered.find((s) => s.state === "available") || ordered[0];
  if (firstFree) firstFree.node.setAttribute("tabindex", "0");

  function paint(info) {
    const free = info.state === "available";
    const node = info.node;
    node.setAttribute("fill", free ? colourOf(info.price) : "url(#seat-hatch)");
    node.classList.toggle("unavailable", !free);
    node.classList.toggle("selected", selected.has(info.id));
    node.setAttribute("aria-checked", selected.has(info.id) ? "true" : "false");
    node.setAttribute("aria-disabled", free ? "false" : "true");
    node.setAttribute("data-state", info.state);
    const status = free ? money(info.price) : info.state === "held" ? "held by someone" : info.state === "sold" ? "sold" : "not for sale";
    node.setAttribute("aria-label", `${info.label}, ${status}`);
    let title = node.querySelector("title");
    if (!title) title = el("title", {}, node);
    title.textContent = `${info.label} · ${status}`;
    const box = listBox.querySelector(`input[data-seat-id="${info.id}"]`);
    if (box) {
      box.checked = selected.has(info.id);
      box.disabled = !free;
      box.closest("tr").querySelector("[data-status]").textContent = free ? "Available" : status[0].toUpperCase() + status.slice(1);
    }
  }

  // --- legend -------------------------------------------------------------------------------
  const legend = h("ul", {class: "legend", "aria-label": "Seat colours"});
  const swatch = (fill, stroke) => {
    const s = el("svg", {viewBox: "0 0 18 18", "aria-hidden": "true", focusable: "false"});
    if (fill === "hatch") {  // its own pattern: the map's is not drawn while the list shows
      const p = el("pattern", {id: "legend-hatch", width: 4, height: 4, patternUnits: "userSpaceOnUse",
                               patternTransform: "rotate(45)"}, el("defs", {}, s));
      el("rect", {width: 4, height: 4, fill: "#d1d5db"}, p);
      el("line", {x1: 0, y1: 0, x2: 0, y2: 4, stroke: "#6b7280", "stroke-width": 1.5}, p);
      fill = "url(#legend-hatch)";
    }
    const c = el("circle", {cx: 9, cy: 9, r: 7, fill}, s);
    if (stroke) { c.setAttribute("stroke", stroke); c.setAttribute("stroke-width", "3"); }
    return s;
  };
  for (const band of bands) {
    const li = h("li");
    li.append(swatch(band.colour), document.createTextNode(money(band.price)));
    legend.append(li);
  }
  for (const [fill, stroke, text] of [["#ffffff", "#111827", "Your choice"], ["hatch", null, "Unavailable"]]) {
    const li = h("li");
    li.append(swatch(fill, stroke), document.createTextNode(text));
    legend.append(li);
  }
  legendBox.replaceWith(legend);
  legend.setAttribute("data-testid", "legend");

  // --- choosing -----------------------------------------------------------------------------
  const problem = (code, fields) => document.dispatchEvent(new CustomEvent("kwika:problem", {detail: {code, fields}}));
  function limitFor(info) {
    const row = rowsByPackage.get(String(info.package_id));
    const ownMost = row ? Number(row.dataset.most) : 0;
    const sameKind = [...selected].filter((id) => seats.get(id).package_id === info.package_id).length;
    const others = Number(form.dataset.gaCount || 0) + selected.size;
    const total = Number(form.dataset.maxTotal);
    if (sameKind >= ownMost) return ownMost;
    if (others >= total) return Math.max(0, total - Number(form.dataset.gaCount || 0));
    return null;
  }
  function toggle(info) {
    if (selected.has(info.id)) selected.delete(info.id);
    else {
      if (info.state !== "available") return;
      const limit = limitFor(info);
      if (limit !== null) { problem("seat_limit", {limit}); return; }
      selected.add(info.id);
    }
    paint(info);
    announce();
  }
  function announce() {
    const chosen = [...selected].map((id) => seats.get(id));
    chosenList.replaceChildren(...chosen.map((info) => {
      const li = h("li");
      const text = h("span", {class: "what"});
      text.append(h("strong", {}, `${info.section} · ${info.number}`), h("span", {}, money(info.price)));
      li.append(text);
      const remove = h("button", {type: "button", class: "secondary", "aria-label": `Remove ${info.label}`}, "Remove");
      remove.addEventListener("click", () => toggle(info));
      li.append(remove);
      return li;
    }));
    emptyNote.hidden = chosen.length > 0;
    document.dispatchEvent(new CustomEvent("kwika:seats", {detail: {seats: chosen.map(
      ({id, price, package_id, label}) => ({id, price, package_id, label}))}}));
  }

  // --- zoom and pan -------------------------------------------------------------------------
  const view = {x: 0, y: 0, w: width, h: height};
  const setView = () => svg.setAttribute("viewBox", `${view.x} ${view.y} ${view.w} ${view.h}`);
  function zoom(factor, cx = view.x + view.w / 2, cy = view.y + view.h / 2) {
    const w = Math.min(width * 1.5, Math.max(width / 8, view.w / factor));
    const f = w / view.w;
    view.x = cx - (cx - view.x) * f; view.y = cy - (cy - view.y) * f;
    view.w = w; view.h = view.h * f;
    setView();
  }
  const toSvg = (clientX, clientY) => {
    const r = svg.getBoundingClientRect();
    const scale = Math.max(view.w / r.width, view.h / r.height);
    const ox = (r.width * scale - view.w) / 2, oy = (r.height * scale - view.h) / 2;
    return [view.x - ox + (clientX - r.left) * scale, view.y - oy + (clientY - r.top) * scale, scale];
  };
  root.querySelectorAll("[data-zoom]").forEach((b) => b.addEventListener("click", () => {
    if (b.dataset.zoom === "reset") { Object.assign(view, {x: 0, y: 0, w: width, h: height}); setView(); }
    else zoom(b.dataset.zoom === "in" ? 1.4 : 1 / 1.4);
  }));
  svg.addEventListener("wheel", (e) => {
    e.preventDefault();
    const [x, y] = toSvg(e.clientX, e.clientY);
    zoom(e.deltaY < 0 ? 1.15 : 1 / 1.15, x, y);
  }, {passive: false});
  const pointers = new Map();
  let drag = null, pinch = null;
  svg.addEventListener("pointerdown", (e) => {
    pointers.set(e.pointerId, [e.clientX, e.clientY]);
    if (pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      pinch = {d: Math.hypot(a[0] - b[0], a[1] - b[1]), w: view.w};
      drag = null;
    } else {
      drag = {x: e.clientX, y: e.clientY, vx: view.x, vy: view.y, moved: false, id: e.pointerId};
    }
  });
  svg.addEventListener("pointermove", (e) => {
    if (!pointers.has(e.pointerId)) return;
    pointers.set(e.pointerId, [e.clientX, e.clientY]);
    if (pinch && pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      const d = Math.hypot(a[0] - b[0], a[1] - b[1]);
      const [cx, cy] = toSvg((a[0] + b[0]) / 2, (a[1] + b[1]) / 2);
      zoom(view.w / (pinch.w * pinch.d / d), cx, cy);
    } else if (drag) {
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (!drag.moved && Math.hypot(dx, dy) < 5) return;
      if (!drag.moved) { drag.moved = true; svg.setPointerCapture(drag.id); svg.classList.add("panning"); }
      const [, , scale] = toSvg(0, 0);
      view.x = drag.vx - dx * scale; view.y = drag.vy - dy * scale;
      setView();
    }
  });
  const endPointer = (e) => {
    pointers.delete(e.pointerId);
    if (pointers.size < 2) pinch = null;
    if (drag && drag.moved) { svg.classList.remove("panning"); svg.addEventListener("click", (c) => c.stopPropagation(), {capture: true, once: true}); }
    if (!pointers.size) drag = null;
  };
  svg.addEventListener("pointerup", endPointer);
  svg.addEventListener("pointercancel", endPointer);

  // --- seat events: click, keys, tooltip -----------------------------------------------------
  const seatOf = (node) => node && node.dataset && node.dataset.seatId ? seats.get(Number(node.dataset.seatId)) : null;
  svg.addEventListener("click", (e) => { const info = seatOf(e.target.closest(".seat")); if (info) toggle(info); });
  function showTip(info) {
    tooltip.textContent = info.node.querySelector("title").textContent;
    tooltip.hidden = false;
    const box = mapBox.getBoundingClientRect(), r = info.node.getBoundingClientRect();
    tooltip.style.left = `${Math.max(4, Math.min(box.width - tooltip.offsetWidth - 4, r.left - box.left + r.width / 2 - tooltip.offsetWidth / 2))}px`;
    tooltip.style.top = `${Math.max(4, r.top - box.top - tooltip.offsetHeight - 6)}px`;
  }
  const hideTip = () => { tooltip.hidden = true; };
  svg.addEventListener("pointerover", (e) => { const info = seatOf(e.target.closest(".seat")); if (info && !drag) showTip(info); });
  svg.addEventListener("pointerout", hideTip);
  svg.addEventListener("focusin", (e) => { const info = seatOf(e.target); if (info) showTip(info); });
  svg.addEventListener("focusout", hideTip);
  function move(from, key) {
    const sameSection = ordered.filter((s) => s.sectionId === from.sectionId);
    const i = ordered.indexOf(from);
    if (key === "ArrowRight") return ordered[i + 1];
    if (key === "ArrowLeft") return ordered[i - 1];
    const rowIndex = from.rowIndex + (key === "ArrowDown" ? 1 : -1);
    const cx = Number(from.node.getAttribute("cx"));
    return sameSection.filter((s) => s.rowIndex === rowIndex)
      .sort((a, b) => Math.abs(a.node.getAttribute("cx") - cx) - Math.abs(b.node.getAttribute("cx") - cx))[0];
  }
  svg.addEventListener("keydown", (e) => {
    const info = seatOf(e.target);
    if (!info) return;
    if (e.key === " " || e.key === "Enter") { e.preventDefault(); toggle(info); showTip(info); return; }
    if (!e.key.startsWith("Arrow")) return;
    e.preventDefault();
    const next = move(info, e.key);
    if (next) {
      info.node.setAttribute("tabindex", "-1");
      next.node.setAttribute("tabindex", "0");
      next.node.focus();
    }
  });

  // --- list view: the same seats as a filterable table of checkboxes --------------------------
  const sectionFilter = h("select", {"data-testid": "filter-section"});
  sectionFilter.append(h("option", {value: ""}, "All sections"),
    ...sections.map((s) => h("option", {value: String(s.id)}, s.name)));
  const priceFilter = h("select", {"data-testid": "filter-price"});
  priceFilter.append(h("option", {value: ""}, "All prices"), ...bands.map((b) => h("option", {value: String(b.price)}, money(b.price))));
  const onlyFree = h("input", {type: "checkbox", checked: ""});
  const filters = h("div", {class: "list-filters"});
  const lab = (text, control) => { const l = h("label", {}, text); l.append(control); return l; };
  const freeLabel = h("label", {class: "check"});
  freeLabel.append(onlyFree, document.createTextNode(" Only available seats"));
  filters.append(lab("Section", sectionFilter), lab("Price", priceFilter), freeLabel);
  const table = h("table", {"data-testid": "seat-table"});
  table.append(h("caption", {class: "sr-only"}, "Seats: check a seat to choose it"));
  const head = h("thead"), headRow = h("tr");
  for (const title of ["Choose", "Section", "Row", "Seat", "Price", "Status"]) headRow.append(h("th", {scope: "col"}, title));
  head.append(headRow);
  const body = h("tbody");
  table.append(head, body);
  for (const info of ordered) {
    const tr = h("tr", {"data-section": info.sectionId, "data-price": info.price});
    const box = h("input", {type: "checkbox", "data-seat-id": info.id, "aria-label": `${info.label}, ${money(info.price)}`});
    box.addEventListener("change", () => { if (box.checked !== selected.has(info.id)) toggle(info); paint(info); });
    const cell = h("td"), label = h("label", {class: "check"});
    label.append(box);
    cell.append(label);
    tr.append(cell, h("td", {}, info.section), h("td", {}, info.row), h("td", {}, info.number),
              h("td", {}, money(info.price)), h("td", {"data-status": ""}, ""));
    body.append(tr);
  }
  const scroll = h("div", {class: "table-scroll"});
  scroll.append(table);
  listBox.append(filters, scroll);
  for (const info of ordered) paint(info);
  function filterList() {
    for (const tr of body.rows) {
      const info = seats.get(Number(tr.querySelector("input").dataset.seatId));
      tr.hidden = (sectionFilter.value && tr.dataset.section !== sectionFilter.value)
        || (priceFilter.value && tr.dataset.price !== priceFilter.value)
        || (onlyFree.checked && info.state !== "available" && !selected.has(info.id));
    }
  }
  [sectionFilter, priceFilter, onlyFree].forEach((c) => c.addEventListener("change", filterList));
  filterList();
  const toggleView = root.querySelector("[data-view-toggle]");
  toggleView.addEventListener("click", () => {
    const list = toggleView.getAttribute("aria-pressed") !== "true";
    toggleView.setAttribute("aria-pressed", String(list));
    toggleView.textContent = list ? "Show the seat map" : "Show seats as a list";
    listBox.hidden = !list;
    mapBox.hidden = list;
    root.querySelector(".zoom").hidden = list;
    filterList();
  });

  // --- live states ----------------------------------------------------------------------------
  function setState(id, state) {
    const info = seats.get(id);
    if (!info || info.state === state) return false;
    info.state = state;
    let lost = false;
    if (state !== "available" && selected.has(id)) { selected.delete(id); lost = true; }
    paint(info);
    return lost;
  }
  function applySeats(states, full) {
    let lost = false;
    if (full) for (const info of seats.values()) if (!(String(info.id) in states)) lost = setState(info.id, "available") || lost;
    for (const [id, state] of Object.entries(states)) lost = setState(Number(id), state) || lost;
    if (lost) { announce(); problem("seat_taken_live", {}); }
    filterList();
  }
  document.addEventListener("kwika:live", async (e) => {
    if (!e.detail.poll) { applySeats(e.detail.seats, e.detail.full); return; }
    try {  // the polling fallback: the seat map's states again
      const resp = await fetch(root.dataset.seating, {headers: {Accept: "application/json"}});
      if (!resp.ok) return;
      const fresh = await resp.json(), states = {};
      for (const s of fresh.sections) for (const seat of s.seats) states[seat.id] = seat.status === "reserved" ? "held" : seat.status;
      applySeats(states, false);
    } catch (_) { /* next tick */ }
  });
  document.addEventListener("kwika:taken", (e) => {
    for (const id of e.detail.seatIds) setState(id, "held");
    announce();
    filterList();
  });
  announce();
}
