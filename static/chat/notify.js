// Telling the user something needs them: the unread count in the tab title and the
// favicon, desktop notifications for direct messages and mentions (permission is asked
// only when the user turns them on), and an optional beep.
//
// What counts: the unread messages of unmuted rooms, plus the mentions in muted rooms
// (a mention in an unmuted room is one of its unread messages already).

import { $, nameOf } from "./dom.js";
import { mentionsMe, openRoom, roomLabel } from "./rooms.js";
import { ME, state } from "./state.js";

const PREFS_KEY = "chat.prefs";
const RECENT_MS = 5 * 60 * 1000; // a replayed message older than this is not announced

const prefs = { notify: false, sound: false };
try {
  Object.assign(prefs, JSON.parse(localStorage.getItem(PREFS_KEY) || "{}"));
} catch {
  /* no saved preferences */
}

let titleBase = "Chat";
let audio = null;

function savePrefs() {
  try {
    localStorage.setItem(PREFS_KEY, JSON.stringify(prefs));
  } catch {
    /* private mode: preferences last as long as the page */
  }
}

/** How many things wait for the user, as the tab title and favicon show it. */
export function attentionCount() {
  let count = 0;
  for (const room of state.rooms.values()) {
    if (room.my_role === null || room.my_role === undefined) continue;
    count += room.muted ? room.mention_count || 0 : room.unread_count || 0;
  }
  return count;
}

/** `label` is the open room's name: the title reads "(3) General · Chat". */
export function setTitle(label) {
  titleBase = label ? `${label} · Chat` : "Chat";
  updateBadges();
}

export function updateBadges() {
  const count = attentionCount();
  const title = count ? `(${count}) ${titleBase}` : titleBase;
  if (document.title !== title) document.title = title;
  const link = $("#favicon");
  if (!link) return;
  if (!link.dataset.readHref) link.dataset.readHref = link.getAttribute("href");
  const href = count ? link.dataset.unreadHref : link.dataset.readHref;
  if (link.getAttribute("href") !== href) {
    link.setAttribute("href", href);
    link.dataset.state = count ? "unread" : "read";
  }
}

function notificationsAllowed() {
  return "Notification" in window && Notification.permission === "granted";
}

/** Whether a new message deserves a desktop notification and the beep: a direct message
 *  (unless the room is muted) or a mention of the user (muted or not), not the user's own,
 *  and not in the room being read while the tab is visible. */
function deserves(message, room) {
  if (!room || message.type === "system" || message.deleted) return false;
  if (message.sender && message.sender.id === ME.id) return false;
  if (message.room === state.current && document.visibilityState === "visible") return false;
  const created = Date.parse(message.created_at);
  if (Number.isFinite(created) && Date.now() - created > RECENT_MS) return false;
  if (mentionsMe(message)) return true;
  return room.kind === "direct" && !room.muted;
}

/** A message the page has just learnt of (called once per new message). */
export function announce(message) {
  const room = state.rooms.get(message.room);
  if (!deserves(message, room)) return;
  if (prefs.sound) beep();
  if (!prefs.notify || !notificationsAllowed()) return;
  const sender = nameOf(message.sender);
  const title = room.kind === "direct" ? sender : `${sender} in ${roomLabel(room)}`;
  const body = message.deleted ? "" : String(message.content || "").slice(0, 200);
  try {
    const notification = new Notification(title, { body, tag: `room-${room.id}` });
    notification.onclick = () => {
      window.focus();
      openRoom(room.id);
      notification.close();
    };
  } catch {
    /* some browsers allow notifications only from a service worker */
  }
}

/** A short beep made on the spot (no sound file to fetch). */
export function beep() {
  try {
    audio = audio || new AudioContext();
    const oscillator = audio.createOscillator();
    const gain = audio.createGain();
    oscillator.frequency.value = 880;
    gain.gain.setValueAtTime(0.08, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.18);
    oscillator.connect(gain).connect(audio.destination);
    oscillator.start();
    oscillator.stop(audio.currentTime + 0.2);
  } catch {
    /* no audio: the notification still shows */
  }
}

function renderPrefs() {
  const on = prefs.notify && notificationsAllowed();
  const toggle = $("#notify-toggle");
  toggle.setAttribute("aria-pressed", String(on));
  const label = on ? "Desktop notifications are on" : "Desktop notifications are off";
  toggle.setAttribute("aria-label", label);
  toggle.title = label;
  toggle.querySelector("use").setAttribute("href", toggle.querySelector("use").getAttribute("href").replace(/#.*$/, on ? "#bell" : "#bell-off"));
  $("#notify-checkbox").checked = on;
  $("#sound-toggle").checked = prefs.sound;
  const note = $("#notify-note");
  if (!("Notification" in window)) note.textContent = "This browser does not show desktop notifications.";
  else if (Notification.permission === "denied") note.textContent = "Notifications are blocked in the browser's site settings.";
  else note.textContent = "";
}

/** Turn desktop notifications on or off; asks the browser's permission (only here, on
 *  the user's click, never on load). */
async function setNotify(wanted) {
  if (wanted && "Notification" in window && Notification.permission !== "granted") {
    try {
      await Notification.requestPermission();
    } catch {
      /* an old browser's callback form: the permission below says what happened */
    }
  }
  prefs.notify = wanted && notificationsAllowed();
  savePrefs();
  renderPrefs();
}

export function initNotify() {
  $("#notify-toggle").addEventListener("click", () => setNotify(!(prefs.notify && notificationsAllowed())));
  $("#notify-checkbox").addEventListener("change", (event) => setNotify(event.currentTarget.checked));
  $("#sound-toggle").addEventListener("change", (event) => {
    prefs.sound = event.currentTarget.checked;
    savePrefs();
    if (prefs.sound) beep(); // a sample, and browsers start audio only after a gesture
    renderPrefs();
  });
  renderPrefs();
  updateBadges();
}
