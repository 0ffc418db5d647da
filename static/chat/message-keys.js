// The message list by keyboard. From the list (Tab reaches it) or a message:
//   Up / Down      the previous / next message (Up from the list: the latest)
//   Home / End     the first / last message loaded
//   Enter          into the message's action toolbar (then Tab / Shift+Tab)
//   R              reply          E  edit (mine)          Delete  delete (mine)
//   +              add a reaction (the emoji picker)
//   Escape         back to the composer (from inside a message: back to the message)
// The toolbar shows whenever focus is inside a message (CSS :focus-within).

import { el } from "./dom.js";
import { deleteMessage, pickReaction, startEdit, startReply } from "./message-actions.js";
import { roomMessages } from "./messages.js";
import { state } from "./state.js";

function listed() {
  return [...el.messages.querySelectorAll(".message:not(.pending)")];
}

function go(node) {
  if (!node) return;
  node.focus({ preventScroll: true });
  node.scrollIntoView({ block: "nearest" });
}

function messageOf(node) {
  return roomMessages(state.current).get(Number(node.dataset.messageId));
}

function onKey(event) {
  if (event.altKey || event.ctrlKey || event.metaKey || event.defaultPrevented) return;
  const target = event.target;
  const nodes = listed();
  if (target === el.messages) {
    const pick = { ArrowUp: nodes.at(-1), End: nodes.at(-1), Home: nodes[0], ArrowDown: nodes.at(-1) }[event.key];
    if (pick) {
      event.preventDefault();
      go(pick);
    }
    return;
  }
  const node = target instanceof Element ? target.closest(".message") : null;
  if (!node) return;
  if (target !== node) {
    if (event.key === "Escape") {
      event.preventDefault();
      node.focus({ preventScroll: true });
    }
    return;
  }
  const at = nodes.indexOf(node);
  const message = messageOf(node);
  const acts = message && !message.deleted && message.type !== "system";
  const mine = acts && node.classList.contains("mine") && message.type === "text";
  const handled = () => event.preventDefault();
  switch (event.key) {
    case "ArrowUp":
      handled();
      go(nodes[Math.max(0, at - 1)]);
      break;
    case "ArrowDown":
      handled();
      if (at === nodes.length - 1) el.input.focus();
      else go(nodes[at + 1]);
      break;
    case "Home":
      handled();
      go(nodes[0]);
      break;
    case "End":
      handled();
      go(nodes.at(-1));
      break;
    case "Escape":
      handled();
      el.input.focus();
      break;
    case "Enter":
      handled();
      node.querySelector(".message-actions button")?.focus();
      break;
    case "r":
    case "R":
      if (acts) {
        handled();
        startReply(message);
      }
      break;
    case "e":
    case "E":
      if (mine) {
        handled();
        startEdit(node, message);
      }
      break;
    case "Delete":
    case "Backspace":
      if (mine) {
        handled();
        deleteMessage(message);
      }
      break;
    case "+":
      if (acts) {
        handled();
        pickReaction(node.querySelector(".react-button"), message);
      }
      break;
    default:
      break;
  }
}

export function initMessageKeys() {
  el.messages.addEventListener("keydown", onKey);
}
