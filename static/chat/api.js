// The REST API: fetch with the session cookie and its CSRF token, JSON in and out, and
// errors as exceptions carrying the server's message and the HTTP status.

function csrfToken() {
  const cookie = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
  return cookie ? decodeURIComponent(cookie.split("=")[1]) : "";
}

function firstError(data) {
  for (const value of Object.values(data)) {
    if (Array.isArray(value) && value.length) return String(value[0]);
  }
  return null;
}

/** `api(method, path, body, {form})`: the answer's JSON (null for 204/205). A signed-out
 *  session goes to the login page; any other failure throws an Error with `status`. */
export async function api(method, path, body, { form = false } = {}) {
  const headers = { Accept: "application/json", "X-CSRFToken": csrfToken() };
  let payload = body;
  if (body !== undefined && !form) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, {
    method,
    headers,
    body: payload,
    credentials: "same-origin",
  });
  if (response.status === 401) {
    location.href = "/login/?next=/";
    throw new Error("signed out");
  }
  const data = [204, 205].includes(response.status)
    ? null
    : await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error((data && (data.detail || firstError(data))) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return data;
}
