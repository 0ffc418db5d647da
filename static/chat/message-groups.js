// Grouping in the message list: what a message's look depends on is the message before
// it. A day separator goes before the first message of each day, and a message of the same
// sender within GROUP_MS of the one before (nothing between them) is `continued`: no name,
// avatar or time of its own (CSS). The list's elements: `.message` (with data-day,
// data-time, data-sender, data-kind), `.day-separator`, and the `.unread-divider`.

import { dayLabel } from "./dates.js";
import { h } from "./dom.js";

const GROUP_MS = 5 * 60 * 1000; // one sender's messages within this long share a header

export function nextMessage(node) {
  let next = node && node.nextElementSibling;
  while (next && !next.classList.contains("message")) next = next.nextElementSibling;
  return next;
}

/** The first of the elements that belong before `node` (its day separator), or itself. */
export function leadOf(node) {
  let lead = node;
  while (lead.previousElementSibling && lead.previousElementSibling.classList.contains("day-separator")) {
    lead = lead.previousElementSibling;
  }
  return lead;
}

/** Fix what a message's look depends on, the message before it: a day separator when the
 *  day changes, and `continued` (no name, avatar or time of its own) for the same sender
 *  within GROUP_MS, with nothing (the unread divider) between. */
export function relink(node) {
  if (!node) return;
  let before = node.previousElementSibling;
  while (before && before.classList.contains("day-separator")) {
    const earlier = before.previousElementSibling;
    before.remove();
    before = earlier;
  }
  let previous = before;
  let apart = false;
  while (previous && !previous.classList.contains("message")) {
    apart = true;
    previous = previous.previousElementSibling;
  }
  const day = node.dataset.day;
  if (!previous || previous.dataset.day !== day) {
    const date = new Date(Number(node.dataset.time));
    const label = dayLabel(date);
    node.before(h("div", { class: "day-separator", role: "separator", "aria-label": label },
      h("span", { text: label })));
    apart = true;
  }
  const groupable = (n) => n.dataset.kind === "text" && n.dataset.sender && !n.classList.contains("deleted");
  const continued = Boolean(previous) && !apart && groupable(node) && groupable(previous) &&
    previous.dataset.sender === node.dataset.sender &&
    Number(node.dataset.time) - Number(previous.dataset.time) < GROUP_MS;
  node.classList.toggle("continued", continued);
}
