// The mews-relay console's only script: conveniences on top of pages that work
// without it. Embedded into the binary; loaded with `defer`.
//  - "select all" for the dead letters table, and a count on the replay button;
//  - live states: elements with data-delivery follow their delivery's state
//    (GET /console/api/states) until it is delivered or dead again.
"use strict";

(function selection() {
  const all = document.querySelector("[data-select-all]");
  const button = document.querySelector("[data-selection-button]");
  const boxes = Array.from(document.querySelectorAll('input[type="checkbox"][name="id"]:not(:disabled)'));
  if (!button) return;
  const update = () => {
    const picked = boxes.filter((box) => box.checked).length;
    button.textContent = picked > 0 ? `Replay ${picked} selected` : "Replay selected";
    button.disabled = picked === 0;
    if (all) all.checked = picked > 0 && picked === boxes.length;
  };
  if (all) {
    all.hidden = boxes.length === 0;
    all.addEventListener("change", () => {
      boxes.forEach((box) => { box.checked = all.checked; });
      update();
    });
  }
  boxes.forEach((box) => box.addEventListener("change", update));
  update();
})();

(function liveStates() {
  const cells = Array.from(document.querySelectorAll("[data-delivery]"));
  const settled = (state) => state === "delivered" || state === "dead";
  if (cells.length === 0 || cells.every((cell) => settled(cell.dataset.state))) return;
  const started = Date.now();
  const poll = async () => {
    const open = cells.filter((cell) => !settled(cell.dataset.state));
    if (Date.now() - started > 10 * 60 * 1000) return;  // a page left open stops asking after 10 minutes
    try {
      const ids = open.map((cell) => cell.dataset.delivery).join(",");
      const answer = await fetch(`/console/api/states?d=${ids}`, { credentials: "same-origin" });
      if (answer.ok) {
        const states = await answer.json();
        for (const cell of open) {
          const state = states[cell.dataset.delivery];
          if (!state || state === cell.dataset.state) continue;
          cell.dataset.state = state;
          const badge = document.createElement("span");
          badge.className = `badge state-${state}`;
          badge.textContent = state;
          cell.replaceChildren(badge);
        }
      }
    } catch (error) {
      // The relay restarting or the network blinking: try again at the next tick.
    }
    if (cells.every((cell) => settled(cell.dataset.state))) {
      // Everything arrived: the page's own figures (counts, callouts) are now stale.
      window.location.reload();
      return;
    }
    window.setTimeout(poll, 1500);
  };
  window.setTimeout(poll, 1000);
})();
