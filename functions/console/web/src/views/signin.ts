// Sign-in: locally the console's dev route signs a token for a chosen role; anywhere, a
// token from the identity provider can be pasted.

import { Api, ApiProblem, type SignInForm } from "../api";
import { errorBox, h } from "../dom";
import { sessionFromToken, type Session } from "../session";

export function signInView(api: Api, done: (s: Session) => void): HTMLElement {
  const err = errorBox();
  const role = h("select", { id: "role", name: "role" },
    h("option", { value: "rider" }, "Rider"),
    h("option", { value: "driver" }, "Driver"),
    h("option", { value: "operator" }, "Operator"));
  const phone = h("input", { id: "phone", name: "phone", value: "010-1234-5678", inputmode: "tel", autocomplete: "tel" });
  const taxi = h("input", { id: "taxi-id", name: "taxiId", value: crypto.randomUUID(), spellcheck: "false" });
  const phoneRow = h("label", {}, "Phone number ", phone);
  const taxiRow = h("label", { hidden: true }, "Taxi id ", taxi,
    h("small", {}, "A new id registers a new taxi; paste an existing one to drive it."));
  const sync = () => {
    phoneRow.hidden = role.value !== "rider";
    taxiRow.hidden = role.value !== "driver";
  };
  role.addEventListener("change", sync);

  const form = h("form", { class: "card", "aria-label": "Dev sign-in" },
    h("h2", {}, "Sign in (local)"),
    h("p", { class: "hint" }, "make up signs a token for the role you choose with this run's throw-away key, like scripts/token."),
    h("label", {}, "Role ", role), phoneRow, taxiRow,
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.clear();
    const f: SignInForm =
      role.value === "rider" ? { role: "rider", phoneNumber: phone.value }
      : role.value === "driver" ? { role: "driver", taxiId: taxi.value }
      : { role: "operator" };
    try {
      const t = await api.devToken(f);
      const s = sessionFromToken(t.token);
      if (s instanceof Error) throw s;
      done(s);
    } catch (e) {
      if (e instanceof ApiProblem && e.status === 404) {
        err.show(new Error(`${e.message}. Paste a token below.`));
      } else err.show(e);
    }
  });

  const pasted = h("textarea", { id: "token", rows: 3, placeholder: "eyJ…", spellcheck: "false" });
  const paste = h("form", { class: "card", "aria-label": "Token sign-in" },
    h("h2", {}, "Or paste a token"),
    h("p", { class: "hint" }, "In the cluster, sign in at your identity provider and paste the bearer token it issues (role rider, driver or operator)."),
    pasted, h("button", { type: "submit" }, "Use token"));
  paste.addEventListener("submit", (ev) => {
    ev.preventDefault();
    err.clear();
    const s = sessionFromToken(pasted.value);
    if (s instanceof Error) err.show(s);
    else done(s);
  });
  return h("section", { class: "signin" }, err.el, form, paste);
}
