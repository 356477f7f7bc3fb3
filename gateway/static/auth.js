// The ops session: the token from the URL fragment `#token=...` (kept in
// sessionStorage, then removed from the address bar) or from the sign-in
// form, and API calls that know about 401/403.

import { $ } from "./util.js";

const TOKEN_KEY = "ops_token";
// What the page does when a session begins or ends (set by dashboard.js).
export const hooks = { started: () => {}, stopped: () => {} };

export const auth = {
  token: null,
  init() {
    const hash = new URLSearchParams(location.hash.replace(/^#/, ""));
    const fromLink = hash.get("token");
    if (fromLink) {
      sessionStorage.setItem(TOKEN_KEY, fromLink);
      // Keep the token out of the address bar, history and screenshots.
      history.replaceState(null, "", location.pathname + location.search);
    }
    this.token = sessionStorage.getItem(TOKEN_KEY);
  },
  headers(extra = {}) {
    return { Authorization: `Bearer ${this.token}`, ...extra };
  },
  signOut(reason) {
    const token = this.token;
    this.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    hooks.stopped();
    if (token && reason === "user") {
      fetch("/v1/sessions/current", { method: "DELETE", headers: { Authorization: `Bearer ${token}` } })
        .catch(() => {});
    }
    showLogin(reason === "expired" ? "The session has expired; sign in again."
      : reason === "forbidden" ? "That account is not an ops account." : null);
  },
};

export function showLogin(reason) {
  $("login").hidden = false;
  $("sign-out").hidden = true;
  if (reason) $("login-reason").textContent = reason;
  $("login-form").elements.user_name.focus();
}

export async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  $("login-error").textContent = "";
  try {
    const resp = await fetch("/v1/sessions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user_name: form.elements.user_name.value, password: form.elements.password.value }),
    });
    const body = await resp.json().catch(() => ({}));
    if (resp.status !== 201) {
      $("login-error").textContent = body.detail || body.title || `Sign-in failed (${resp.status})`;
      return;
    }
    if (body.role !== "ops") {
      $("login-error").textContent = "That account is not an ops account.";
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, body.token);
    auth.token = body.token;
    form.reset();
    $("login").hidden = true;
    hooks.started();
  } catch (err) {
    $("login-error").textContent = `The gateway did not answer: ${err.message}`;
  }
}

// API calls that know about 401/403.
export async function api(path, opts = {}) {
  if (!auth.token) throw new Error("signed out");
  const resp = await fetch(path, { ...opts, headers: auth.headers(opts.headers || {}) });
  if (resp.status === 401) {
    auth.signOut("expired");
    throw new Error("session expired");
  }
  if (resp.status === 403 && path.startsWith("/v1/ops/")) {
    auth.signOut("forbidden");
    throw new Error("forbidden");
  }
  return resp;
}
