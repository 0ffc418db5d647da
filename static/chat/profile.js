// The profile dialog: display name, picture (upload or remove), password, and the
// notification preferences (notify.js wires those). The page is signed in by its Django
// session: a password change answers a new token pair the page has no use for, and the
// server keeps this session signed in while it revokes every other one.

import { api } from "./api.js";
import { $, avatar, showError } from "./dom.js";
import { loadMembers } from "./members.js";
import { ME, state } from "./state.js";

const dialog = () => $("#profile-dialog");

function say(text) {
  $("#profile-message").textContent = text;
}

/** The user's name and picture wherever the chrome shows them. */
function renderMe() {
  $("#me-name").textContent = ME.display_name || ME.username;
  $("#me-avatar").replaceChildren(avatar(ME));
  $("#profile-avatar").replaceChildren(avatar(ME, "lg"));
  $("#avatar-remove").hidden = !ME.avatar;
}

function applyMe(user) {
  ME.display_name = user.display_name || "";
  ME.avatar = user.avatar || undefined;
  renderMe();
}

async function saveName(event) {
  event.preventDefault();
  const error = $("#profile-error");
  showError(error, "");
  say("");
  try {
    applyMe(await api("PATCH", "/api/auth/me/", { display_name: $("#display-name-input").value.trim() }));
    say("Name saved.");
    if (state.current) loadMembers(state.current); // the member list shows the new name
  } catch (failure) {
    showError(error, failure.message);
  }
}

async function uploadAvatar(event) {
  const file = event.currentTarget.files[0];
  event.currentTarget.value = "";
  if (!file) return;
  const error = $("#profile-error");
  showError(error, "");
  say("Uploading…");
  const form = new FormData();
  form.append("file", file);
  try {
    applyMe(await api("POST", "/api/auth/me/avatar/", form, { form: true }));
    say("Picture saved.");
  } catch (failure) {
    say("");
    showError(error, failure.message);
  }
}

async function removeAvatar() {
  const error = $("#profile-error");
  showError(error, "");
  try {
    await api("DELETE", "/api/auth/me/avatar/");
    applyMe({ ...ME, avatar: undefined });
    say("Picture removed.");
  } catch (failure) {
    showError(error, failure.message);
  }
}

async function changePassword(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const error = $("#password-error");
  showError(error, "");
  $("#password-message").textContent = "";
  // The server revokes every other credential, this page's socket too, before it answers
  // with this session's new cookie: the socket waits for the answer to reconnect.
  const change = api("POST", "/api/auth/password/", {
    old_password: form.elements.old_password.value,
    new_password: form.elements.new_password.value,
  });
  state.credentialsChange = change;
  try {
    await change;
    form.reset();
    $("#password-message").textContent = "Password changed. Your other sessions are signed out.";
  } catch (failure) {
    showError(error, failure.message);
  } finally {
    if (state.credentialsChange === change) state.credentialsChange = null;
  }
}

export function openProfile() {
  $("#display-name-input").value = ME.display_name || "";
  say("");
  showError($("#profile-error"), "");
  renderMe();
  if (!dialog().open) dialog().showModal();
}

export function initProfile() {
  renderMe();
  $("#profile-button").addEventListener("click", openProfile);
  $("#display-name-form").addEventListener("submit", saveName);
  $("#avatar-input").addEventListener("change", uploadAvatar);
  $("#avatar-remove").addEventListener("click", removeAvatar);
  $("#password-form").addEventListener("submit", changePassword);
  dialog().querySelector(".dialog-close").addEventListener("click", () => dialog().close());
  dialog().addEventListener("click", (event) => {
    if (event.target === dialog()) dialog().close();
  });
}
