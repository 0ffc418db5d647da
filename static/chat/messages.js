// The message pane: the messages the page knows of each room (newest state wins, by
// stream position), history pages, and how one message is drawn.

import { api } from "./api.js";
import { el, h, nameOf } from "./dom.js";
import { messageActions, toggleReaction } from "./message-actions.js";
import { ME, state } from "./state.js";

const PAGE = 50; // messages per history page

export function roomMessages(roomId) {
  if (!state.messages.has(roomId)) state.messages.set(roomId, new Map());
  return state.messages.get(roomId);
}

/** Keep the newest state of a message: a change with a higher `pos` wins. True for a
 *  message the page did not know. */
export function storeMessage(message) {
  const messages = roomMessages(message.room);
  const known = messages.get(message.id);
  if (known && known.pos > message.pos) return false;
  messages.set(message.id, message);
  const pending = state.pending.get(message.client_id);
  if (pending && message.sender && message.sender.id === ME.id) {
    state.pending.delete(message.client_id);
    removePendingElement(message.client_id);
  }
  if (message.room === state.current) placeMessage(message);
  return !known;
}

export async function loadHistory(roomId, before) {
  const info = state.history.get(roomId) || { hasMore: true, loading: false, loaded: false };
  if (info.loading) return;
  info.loading = true;
  state.history.set(roomId, info);
  try {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (before) query.set("before", String(before));
    const page = await api("GET", `/api/rooms/${roomId}/messages/?${query}`);
    const box = el.messages;
    const fromBottom = box.scrollHeight - box.scrollTop;
    for (const message of page.results) storeMessage(message);
    info.hasMore = page.has_more;
    info.loaded = true;
    if (page.results.length) {
      info.oldestSeq = Math.min(info.oldestSeq || Infinity, page.results[0].seq);
    }
    if (!state.lastPos.has(roomId)) state.lastPos.set(roomId, page.pos);
    if (roomId === state.current) {
      if (before) box.scrollTop = box.scrollHeight - fromBottom;
      else scrollToBottom();
    }
  } finally {
    info.loading = false;
  }
}

/** Scrolled near the top of the open room: fetch the page before the oldest shown. */
export function loadOlderOnScroll() {
  el.messages.addEventListener("scroll", () => {
    const info = state.history.get(state.current);
    if (el.messages.scrollTop < 80 && info && info.hasMore && !info.loading && info.oldestSeq) {
      loadHistory(state.current, info.oldestSeq);
    }
  });
}

export function renderMessages() {
  const roomId = state.current;
  const messages = [...roomMessages(roomId).values()].sort((a, b) => a.seq - b.seq);
  el.messages.replaceChildren(...messages.map(messageElement));
  for (const pending of state.pending.values()) {
    if (pending.room === roomId) el.messages.append(messageElement(pending));
  }
  scrollToBottom();
}

/** Draw a message in its place by `seq` (pending ones stay last), or redraw it. */
export function placeMessage(message) {
  const box = el.messages;
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
  const node = messageElement(message);
  const old = box.querySelector(`.message[data-message-id="${message.id}"]`);
  if (old) {
    if (old.querySelector(".edit-input")) return; // do not pull the editor away
    old.replaceWith(node);
    return;
  }
  let next = null;
  for (const child of box.children) {
    const seq = Number(child.dataset.seq);
    if (child.classList.contains("pending") || seq > message.seq) {
      next = child;
      break;
    }
  }
  box.insertBefore(node, next);
  if (atBottom || (message.sender && message.sender.id === ME.id)) scrollToBottom();
}

export function removePendingElement(clientId) {
  const node = el.messages.querySelector(`.message.pending[data-client-id="${CSS.escape(clientId)}"]`);
  if (node) node.remove();
}

export function scrollToBottom() {
  el.messages.scrollTop = el.messages.scrollHeight;
}

// An integration key's bot posts under the name its script gave (the seed's `username`,
// kept in the payload as `display_name`, SPEC 9.2); the "bot" tag beside it says who.
function shownSender(message) {
  const given = message.sender && message.sender.is_bot && message.payload && message.payload.display_name;
  return typeof given === "string" && given ? given : nameOf(message.sender);
}

export function messageElement(message) {
  const mine = message.sender && message.sender.id === ME.id;
  const classes = ["message"];
  if (mine) classes.push("mine");
  if (message.type === "system") classes.push("system");
  if (message.type === "announcement") classes.push("announcement");
  if (message.deleted) classes.push("deleted");
  if (message.pending) classes.push("pending");
  const node = h("article", {
    class: classes.join(" "),
    "data-message-id": message.pending ? null : message.id,
    "data-client-id": message.client_id,
    "data-seq": message.pending ? null : message.seq,
  });
  if (message.type === "system") {
    node.append(h("div", { class: "message-content", text: message.content }));
    return node;
  }
  const time = new Date(message.created_at);
  node.append(
    h(
      "div",
      { class: "message-head" },
      h("span", { class: "message-sender", text: shownSender(message) }),
      message.sender && message.sender.is_guest ? h("span", { class: "guest-tag", text: "guest" }) : null,
      message.sender && message.sender.is_bot ? h("span", { class: "guest-tag", text: "bot" }) : null,
      h("time", {
        class: "message-time",
        datetime: message.created_at,
        text: time.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
      }),
      message.edited_at && !message.deleted
        ? h("span", { class: "edited-mark", text: "(edited)" })
        : null,
    ),
  );
  if (message.reply_to) node.append(replyQuote(message));
  if (message.title && !message.deleted) {
    node.append(h("div", { class: "message-title", text: message.title }));
  }
  node.append(
    h("div", {
      class: "message-content",
      text: message.deleted ? "This message was deleted." : message.content,
    }),
  );
  if (!message.deleted && message.attachments && message.attachments.length) {
    node.append(h("div", { class: "attachments" }, ...message.attachments.map(attachmentElement)));
  }
  if (!message.deleted && message.reactions && message.reactions.length) {
    node.append(h("div", { class: "reactions" }, ...message.reactions.map((r) => reactionChip(message, r))));
  }
  if (!message.pending && !message.deleted) node.append(messageActions(message, mine));
  return node;
}

function replyQuote(message) {
  const original = roomMessages(message.room).get(message.reply_to);
  const text = original
    ? `${nameOf(original.sender)}: ${original.deleted ? "deleted message" : original.content}`
    : "an earlier message";
  return h("div", { class: "reply-quote", text: `↪ ${text.slice(0, 140)}` });
}

function attachmentElement(file) {
  const safe = typeof file.url === "string" && /^(https?:\/\/|\/)/.test(file.url);
  if (!safe) return null;
  if (file.content_type && file.content_type.startsWith("image/")) {
    return h("a", { class: "attachment", href: file.url, target: "_blank", rel: "noopener" },
      h("img", { src: file.url, alt: file.name || "image", loading: "lazy" }));
  }
  return h("a", { class: "attachment", href: file.url, target: "_blank", rel: "noopener noreferrer",
    text: `📄 ${file.name || file.url}` });
}

function reactionChip(message, reaction) {
  const mine = reaction.me ?? (reaction.user_ids || []).includes(ME.id);
  return h(
    "button",
    {
      type: "button",
      class: `reaction${mine ? " mine" : ""}`,
      "data-emoji": reaction.emoji,
      "aria-pressed": mine ? "true" : "false",
      "aria-label": `${reaction.emoji} ${reaction.count}`,
      onclick: () => toggleReaction(message, reaction.emoji, mine),
    },
    reaction.emoji,
    h("span", { class: "reaction-count", text: String(reaction.count) }),
  );
}
