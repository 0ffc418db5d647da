// The user's own stream (SPEC 12): what happened to the user's rooms rather than in one
// room (added, removed, renamed, archived, deleted, role or mute changed, read on another
// tab). Each frame carries `user_pos`; the page keeps the last one and reconnects with
// `?after_user=` so the server replays what it missed, in order.

import { api } from "./api.js";
import { loadMembers } from "./members.js";
import { announce } from "./notify.js";
import { forgetRoom, isMember, removedFrom, upsertRoom } from "./rooms.js";
import { joinRoom, socketReady } from "./socket.js";
import { state } from "./state.js";

/** Apply one frame of the user's stream; a frame already applied (by position) is skipped. */
export function applyUserFrame(frame) {
  if (typeof frame.user_pos === "number") {
    if (state.userPos !== null && frame.user_pos <= state.userPos) return;
    state.userPos = frame.user_pos;
  }
  const roomId = frame.room;
  switch (frame.type) {
    case "room_added":
      api("GET", `/api/rooms/${roomId}/`)
        .then((room) => {
          const known = state.rooms.has(room.id) && isMember(state.rooms.get(room.id));
          upsertRoom({ ...room, countedPos: room.pos ?? 0 });
          if (!known && socketReady()) joinRoom(room.id);
          // What was said before the page joined (the first message of a new direct
          // room often is what added it) is in the counts, not in the live frames.
          if (!known && room.unread_count) announceLatest(room);
        })
        .catch(() => {}); // removed again meanwhile: a later frame says so
      break;
    case "room_removed":
      if (state.rooms.has(roomId)) removedFrom(roomId);
      break;
    case "room_deleted":
      forgetRoom(roomId); // also sent by the room itself, without user_pos: idempotent
      break;
    case "room_updated":
      if (state.rooms.has(roomId)) {
        upsertRoom({ id: roomId, name: frame.name, description: frame.description, is_archived: frame.is_archived });
      }
      break;
    case "membership_changed":
      if (state.rooms.has(roomId)) {
        upsertRoom({ id: roomId, my_role: frame.role, muted: frame.muted });
        if (roomId === state.current) loadMembers(roomId);
      }
      break;
    case "room_read":
      if (state.rooms.has(roomId)) {
        const counts = { id: roomId, unread_count: frame.unread_count };
        if (frame.mention_count !== undefined) counts.mention_count = frame.mention_count;
        upsertRoom(counts);
      }
      break;
    default:
      break;
  }
}

async function announceLatest(room) {
  try {
    const page = await api("GET", `/api/rooms/${room.id}/messages/?limit=${Math.min(room.unread_count, 3)}`);
    for (const message of page.results) announce(message);
  } catch {
    /* a notification is a courtesy */
  }
}
