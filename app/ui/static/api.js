// The server's public HTTP API, same origin. Paths are resolved against the folder above the
// page (the page lives at <base>/ui/), so the dashboard also works behind a path prefix.

const KEY_STORAGE = "runyard.apiKey";
const base = new URL("..", window.location.href);

export class ApiError extends Error {
  constructor(status, detail) {
    super(status === 401 ? "This server needs an API key: paste it above." : detail);
    this.status = status;
  }
}

export function getKey() {
  return window.localStorage.getItem(KEY_STORAGE) ?? "";
}

export function setKey(key) {
  if (key) window.localStorage.setItem(KEY_STORAGE, key);
  else window.localStorage.removeItem(KEY_STORAGE);
}

function detailOf(data, fallback) {
  const detail = data?.detail;
  if (typeof detail === "string") return detail;
  // Validation errors arrive as a list of {loc, msg}.
  if (Array.isArray(detail)) return detail.map((d) => `${(d.loc ?? []).join(".")}: ${d.msg}`).join("; ");
  return fallback;
}

/** JSON from `path`; `allow` lists error statuses whose body is still the answer (/ready's 503). */
export async function api(path, { method = "GET", body, allow = [] } = {}) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  const key = getKey();
  if (key) headers["x-api-key"] = key;
  let response;
  try {
    response = await fetch(new URL(path, base), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "The server does not answer.");
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text };
  }
  if (!response.ok && !allow.includes(response.status)) {
    throw new ApiError(response.status, detailOf(data, `${response.status} ${response.statusText}`));
  }
  return data;
}

/** A URL for EventSource, which cannot send headers: the key goes in the query instead. */
export function streamUrl(path) {
  const url = new URL(path, base);
  const key = getKey();
  if (key) url.searchParams.set("api_key", key);
  return url.href;
}
