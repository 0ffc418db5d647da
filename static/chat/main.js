// The chat page: rooms, live messages over one WebSocket, recovery after a drop.
// Native ES modules, no framework and no build step; templates/chat.html loads this one.
//
//   state.js            the shared state (every field declared there) and ME
//   dom.js              element helpers, the page's fixed elements
//   api.js              REST calls (session cookie, CSRF, errors)
//   socket.js           the WebSocket: reconnect, recovery with `after`, frame dispatch
//   rooms.js            the room list: labels, unread badges, presence dots, opening
//   members.js          the member list and who is online
//   messages.js         the message pane: store, history, grouping, divider, jump, keeping one's place
//   message-view.js     how one message is drawn (rendered Markdown, avatar, reply quote, attachments)
//   message-groups.js   day separators and one header per sender's run
//   message-actions.js  reactions, edit, delete, reply
//   message-keys.js     the message list by keyboard
//   composer.js         sending, uploads (button, drop, paste), emoji, typing
//   emoji.js            the emoji picker      dates.js   times and day labels      icons.js   the SVG icons
//   sidebar.js          new room, new direct message, browse public rooms
//   userstream.js       the user's own stream: rooms added, removed, renamed, read elsewhere
//   notify.js           tab title and favicon counts, desktop notifications, the beep
//   search.js           message search and the jump to a result
//   room-settings.js    the room settings dialog (mute, topic, members, archive, delete)
//   profile.js          the profile dialog (name, picture, password, preferences)
//   drawers.js          the phone layout's drawers (rooms, members)
//   shortcuts.js        keyboard shortcuts and the quick room switcher

import { api } from "./api.js";
import { initComposer } from "./composer.js";
import { el } from "./dom.js";
import { initMessages } from "./messages.js";
import { defaultRoom, generalRoom, isMember, loadRooms, openRoom, upsertRoom } from "./rooms.js";
import { initDrawers } from "./drawers.js";
import { initMembers } from "./members.js";
import { initNotify } from "./notify.js";
import { initProfile } from "./profile.js";
import { initRoomSettings } from "./room-settings.js";
import { initSearch } from "./search.js";
import { initShortcuts } from "./shortcuts.js";
import { initSidebar } from "./sidebar.js";
import { connect, initConnection, setConnection } from "./socket.js";

async function start() {
  try {
    await loadRooms();
  } catch {
    setConnection("offline", "Could not load rooms");
    setTimeout(() => location.reload(), 5000);
    return;
  }
  // Everyone is in General: a newcomer joins it on their first visit.
  const general = generalRoom();
  if (general && !isMember(general) && !general.is_archived) {
    try {
      upsertRoom(await api("POST", `/api/rooms/${general.id}/join/`));
    } catch {
      /* the room list still works without it */
    }
  }
  connect();
  const first = defaultRoom();
  if (first) openRoom(first.id);
  else el.title.textContent = "Join or create a room";
}

initSidebar();
initDrawers();
initMembers();
initNotify();
initProfile();
initRoomSettings();
initSearch();
initShortcuts();
initComposer();
initMessages();
initConnection();
start();
