// The API explorer: Swagger UI on /openapi.json, signed in with a session.
// Signing in here, or calling POST /v1/sessions from the explorer, makes every
// later "Try it out" carry the token; /docs#token=... signs in from a link.
"use strict";

const who = document.getElementById("who");
const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");

const ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  tryItOutEnabled: true,
  // The bearer scheme is known once the document is loaded.
  onComplete: () => {
    if (fromLink) {
      ui.preauthorizeApiKey("bearer", fromLink);
      who.textContent = "Signed in from the link.";
      who.className = "ok";
    }
  },
  responseInterceptor: (res) => {
    if (res.status === 201 && /\/v1\/sessions$/.test(new URL(res.url).pathname) && res.body) {
      signedIn(res.body);
    }
    return res;
  },
});

function signedIn(session) {
  ui.preauthorizeApiKey("bearer", session.token);
  who.textContent = `Signed in as ${session.role} ${session.subject_id}; ` +
    "every call from this page now sends the token.";
  who.className = "ok";
}

document.getElementById("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = {
    user_name: document.getElementById("user").value.trim(),
    password: document.getElementById("password").value,
  };
  const res = await fetch("/v1/sessions", {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify(body),
  });
  const answer = await res.json().catch(() => ({}));
  if (res.status === 201) {
    signedIn(answer);
  } else {
    who.textContent = answer.detail || `Sign-in failed (${res.status}).`;
    who.className = "bad";
  }
});

