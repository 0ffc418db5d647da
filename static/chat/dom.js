// Small element helpers and the page's fixed elements. User content only ever reaches
// the DOM through textContent and attributes (`h`'s `text`), never innerHTML, so it is
// shown as text.

export const $ = (selector, root = document) => root.querySelector(selector);

/** The elements of templates/chat.html the modules render into. */
export const el = {
  app: $("#app"),
  rooms: $("#room-list"),
  directs: $("#direct-list"),
  publicRooms: $("#public-rooms"),
  title: $("#room-title"),
  description: $("#room-description"),
  messages: $("#messages"),
  typing: $("#typing-indicator"),
  members: $("#member-list"),
  composer: $("#composer"),
  input: $("#message-input"),
  file: $("#file-input"),
  pendingFiles: $("#pending-attachments"),
  replyBanner: $("#reply-banner"),
  composerError: $("#composer-error"),
  connection: $("#connection-state"),
  sendButton: $("#send-button"),
  settingsButton: $("#room-settings-button"),
};

/** `h("li", {class, text, onclick, "data-x": …}, ...children)`: an element. `text` sets
 *  textContent; null, undefined and false attributes are left out. */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

/** What the page calls a user: the display name, else the username. */
export function nameOf(user) {
  return (user && (user.display_name || user.username)) || "someone";
}

/** Show `message` in an error element, or hide it when there is none. */
export function showError(node, message) {
  node.textContent = message || "";
  node.hidden = !message;
}

/** Initials of a user's name, for the avatar of someone without a picture. */
function initials(user) {
  const words = nameOf(user).trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? words[0][0] + words[words.length - 1][0] : nameOf(user).slice(0, 2);
  return letters.toUpperCase();
}

/** A user's picture (`user.avatar`, served from our origin) or their initials on a colour
 *  drawn from their id. Decorative: the name beside it says who it is. */
export function avatar(user, size = "sm") {
  const url = user && user.avatar;
  if (typeof url === "string" && /^(https?:\/\/|\/)/.test(url)) {
    return h("img", { class: `avatar avatar-${size}`, src: url, alt: "", "aria-hidden": "true" });
  }
  const node = h("span", { class: `avatar avatar-${size} initials`, "aria-hidden": "true", text: initials(user) });
  node.style.backgroundColor = `hsl(${((user && user.id) || 0) * 67 % 360} 55% 45%)`;
  return node;
}
