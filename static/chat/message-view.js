// How one message is drawn: avatar, name and time (shown once per group, see
// messages.js), the server's rendered Markdown, a reply quote that leads to its original,
// attachments (thumbnails in a box of fixed size, so a loading picture moves nothing),
// reactions, and the action toolbar.
//
// The only HTML inserted is the server's sanitized `content_html` (messaging/rendering.py);
// it is parsed in an inert <template> and checked again against the same short list of
// tags and attributes before it is shown. Everything else goes in as text.

import { fullTime, dayKey, shortTime } from "./dates.js";
import { avatar, h, nameOf } from "./dom.js";
import { icon } from "./icons.js";
import { messageActions, toggleReaction } from "./message-actions.js";
import { mediaLoaded, roomMessages, showMessage } from "./messages.js";
import { ME } from "./state.js";

const TAGS = new Set(["A", "BLOCKQUOTE", "BR", "CODE", "DEL", "EM", "HR", "LI", "OL", "P", "PRE", "S",
  "SPAN", "STRONG", "UL"]);
const ATTRIBUTES = { A: ["href"], OL: ["start"], SPAN: ["class", "data-user-id"], CODE: ["class"] };
const CLASSES = /^(mention|mention-broadcast|language-[\w+#.-]+)$/;
const SAFE_URL = /^(https?:|mailto:)/i;
const AVATAR_PX = 36;

// An integration key's bot posts under the name its script gave (the seed's `username`,
// kept in the payload as `display_name`, SPEC 9.2); the "bot" tag beside it says who.
export function shownSender(message) {
  const given = message.sender && message.sender.is_bot && message.payload && message.payload.display_name;
  return typeof given === "string" && given ? given : nameOf(message.sender);
}

/** Whether `message` mentions the reader: by name, `@here` (both in `mentions`), `@room`. */
export function mentionsMe(message) {
  if (!message.sender || message.sender.id === ME.id || message.deleted) return false;
  if (message.mentions_room) return true;
  if (Array.isArray(message.mentions) && message.mentions.includes(ME.id)) return true;
  return typeof message.content_html === "string" && message.content_html.includes(`data-user-id="${ME.id}"`);
}

export function messageElement(message) {
  const mine = Boolean(message.sender && message.sender.id === ME.id);
  const created = new Date(message.created_at);
  const classes = ["message", `type-${message.type}`];
  if (mine) classes.push("mine");
  if (message.type === "system") classes.push("system");
  if (message.type === "announcement") classes.push("announcement");
  if (message.deleted) classes.push("deleted");
  if (message.pending) classes.push("pending");
  if (mentionsMe(message)) classes.push("mentions-me");
  const node = h("article", {
    class: classes.join(" "),
    tabindex: -1,
    "data-message-id": message.pending ? null : message.id,
    "data-client-id": message.client_id,
    "data-seq": message.pending ? null : message.seq,
    // What grouping compares (messages.js): who, when, which day, what kind.
    "data-sender": message.sender ? `${message.sender.id}:${shownSender(message)}` : "",
    "data-time": String(created.getTime()),
    "data-day": dayKey(created),
    "data-kind": message.type,
  });
  if (message.type === "system") {
    node.append(content(message));
    return node;
  }
  const sender = message.sender || { id: 0, username: "?" };
  const head = h("div", { class: "message-head" },
    h("span", { class: "message-sender", text: shownSender(message) }),
    sender.is_guest ? h("span", { class: "guest-tag", text: "guest" }) : null,
    sender.is_bot ? h("span", { class: "guest-tag", text: "bot" }) : null,
    timeElement(created, "message-time"),
    message.edited_at && !message.deleted ? h("span", { class: "edited-mark", text: "(edited)" }) : null);
  const main = h("div", { class: "message-main" }, head);
  if (message.reply_to) main.append(replyQuote(message));
  if (message.title && !message.deleted) main.append(h("div", { class: "message-title", text: message.title }));
  main.append(content(message));
  if (!message.deleted && message.attachments && message.attachments.length) {
    main.append(h("div", { class: "attachments" }, ...message.attachments.map(attachmentElement)));
  }
  if (!message.deleted && message.reactions && message.reactions.length) {
    main.append(h("div", { class: "reactions" }, ...message.reactions.map((r) => reactionChip(message, r))));
  }
  node.append(h("div", { class: "message-gutter" }, messageAvatar(sender), timeElement(created, "gutter-time")), main);
  if (!message.pending && !message.deleted) node.append(messageActions(message, mine));
  return node;
}

/** The short time, with the full date and time as its tooltip. */
function timeElement(date, className) {
  return h("time", { class: className, datetime: date.toISOString(), title: fullTime(date), text: shortTime(date) });
}

function messageAvatar(user) {
  const node = avatar(user, "msg");
  if (node.tagName === "IMG") {
    node.loading = "lazy";
    node.decoding = "async";
    node.width = AVATAR_PX;
    node.height = AVATAR_PX;
  }
  return node;
}

function content(message) {
  const node = h("div", { class: "message-content" });
  if (message.deleted) {
    node.textContent = "This message was deleted.";
  } else if (typeof message.content_html === "string" && message.content_html.trim()) {
    node.classList.add("rich");
    node.append(sanitized(message.content_html));
    for (const mention of node.querySelectorAll(`.mention[data-user-id="${ME.id}"]`)) mention.classList.add("is-me");
  } else {
    node.textContent = message.content; // a pending message, or a server without rendering
  }
  return node;
}

/** The server's `content_html` as nodes: parsed inert, then held to the server's own list
 *  of tags and attributes (anything else becomes its text), links to http(s)/mailto only,
 *  each opening in a new tab. */
function sanitized(html) {
  const template = document.createElement("template");
  template.innerHTML = html; // the server's sanitized HTML (see the module's comment)
  const walk = (parent) => {
    for (const child of [...parent.childNodes]) {
      if (child.nodeType === Node.TEXT_NODE) continue;
      if (child.nodeType !== Node.ELEMENT_NODE || !TAGS.has(child.tagName)) {
        child.replaceWith(document.createTextNode(child.textContent || ""));
        continue;
      }
      const allowed = ATTRIBUTES[child.tagName] || [];
      for (const { name } of [...child.attributes]) if (!allowed.includes(name)) child.removeAttribute(name);
      // Only the server's own classes: a mention, a code block's language.
      const classes = [...child.classList].filter((c) => CLASSES.test(c));
      if (classes.length) child.className = classes.join(" ");
      else child.removeAttribute("class");
      if (child.tagName === "A") {
        const href = (child.getAttribute("href") || "").trim();
        if (!SAFE_URL.test(href)) {
          child.replaceWith(document.createTextNode(child.textContent || ""));
          continue;
        }
        child.target = "_blank";
        child.rel = "noopener noreferrer";
      }
      walk(child);
    }
  };
  walk(template.content);
  // Blocks are separated by newlines in the HTML: text to the DOM, nothing on screen.
  for (const child of [...template.content.childNodes]) {
    if (child.nodeType === Node.TEXT_NODE && !child.textContent.trim()) child.remove();
  }
  return template.content;
}

function replyQuote(message) {
  const original = roomMessages(message.room).get(message.reply_to);
  const text = original
    ? `${nameOf(original.sender)}: ${original.deleted ? "deleted message" : original.content}`
    : "an earlier message";
  return h("button", {
    type: "button",
    class: "reply-quote",
    title: "Show the original message",
    "data-reply-to": message.reply_to,
    onclick: () => showMessage(message.room, message.reply_to),
  }, icon("reply"), h("span", { class: "reply-text", text: text.slice(0, 140) }));
}

function attachmentElement(file) {
  const safe = typeof file.url === "string" && /^(https?:\/\/|\/)/.test(file.url);
  if (!safe) return null;
  const name = file.name || file.url;
  if (file.content_type && file.content_type.startsWith("image/")) {
    // A box of fixed size holds the picture (scaled down inside it): its loading moves
    // nothing; messages.js still re-pins the bottom on load, in case a style changes.
    const img = h("img", { loading: "lazy", decoding: "async", alt: name, src: file.url });
    img.addEventListener("load", mediaLoaded);
    return h("a", { class: "attachment attachment-image", href: file.url, target: "_blank", rel: "noopener noreferrer",
      title: name }, img);
  }
  return h("a", { class: "attachment attachment-file", href: file.url, target: "_blank", rel: "noopener noreferrer" },
    icon("file"), h("span", { text: name }));
}

function reactionChip(message, reaction) {
  const mine = reaction.me ?? (reaction.user_ids || []).includes(ME.id);
  return h("button", {
    type: "button",
    class: `reaction${mine ? " mine" : ""}`,
    "data-emoji": reaction.emoji,
    "aria-pressed": mine ? "true" : "false",
    "aria-label": `${reaction.emoji} ${reaction.count}`,
    onclick: () => toggleReaction(message, reaction.emoji, mine),
  }, reaction.emoji, h("span", { class: "reaction-count", text: String(reaction.count) }));
}
