// Security keys and passkeys (WebAuthn): a button with data-webauthn="register" adds
// one to the account, data-webauthn="signin" signs in with one. The options and
// the answers are JSON (PublicKeyCredential's own JSON forms); every request
// carries the page's CSRF token (web/csrf.py).
"use strict";
(() => {
  const token = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

  const post = async (path, body) => {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRF-Token": token(),
      },
      body: JSON.stringify(body ?? {}),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error(data.detail || `refused (${response.status})`);
    }
    return data;
  };

  const say = (text) => {
    const out = document.querySelector("[data-webauthn-message]");
    if (out) out.textContent = text;
  };

  const finish = (result) => {
    const box = document.querySelector("[data-recovery]");
    if (!result.recovery_codes || !box) {
      window.location.assign(result.redirect);
      return;
    }
    const list = box.querySelector("[data-recovery-codes]");
    for (const code of result.recovery_codes) {
      const item = document.createElement("li");
      const text = document.createElement("code");
      text.textContent = code;
      item.append(text);
      list.append(item);
    }
    box.querySelector("[data-recovery-continue]").href = result.redirect;
    box.hidden = false;
  };

  const register = async () => {
    const options = await post("/account/keys/options");
    const credential = await navigator.credentials.create({
      publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options),
    });
    const name = document.querySelector('[name="key_name"]')?.value ?? "";
    finish(await post("/account/keys", { name, credential: credential.toJSON() }));
  };

  const signIn = async (next) => {
    const options = await post("/signin/key/options");
    const credential = await navigator.credentials.get({
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options),
    });
    finish(await post("/signin/key", { next, credential: credential.toJSON() }));
  };

  document.addEventListener("click", async (event) => {
    const button = event.target instanceof Element ? event.target.closest("[data-webauthn]") : null;
    if (!button) return;
    event.preventDefault();
    say("");
    button.disabled = true;
    try {
      if (button.dataset.webauthn === "register") await register();
      else await signIn(button.dataset.next || "/tickets");
    } catch (error) {
      say(error.message || "The security key was not used.");
    } finally {
      button.disabled = false;
    }
  });
})();
