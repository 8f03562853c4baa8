// The console's shell: sign-in, then the view for the signed-in role (#/rider, #/driver,
// #/ops), each polling the API while it is shown.

import "./style.css";
import { Api } from "./api";
import { h } from "./dom";
import { loadSession, saveSession, type Session } from "./session";
import { signInView } from "./views/signin";
import { riderView } from "./views/rider";
import { driverView } from "./views/driver";
import { opsView } from "./views/ops";

let session: Session | null = loadSession(sessionStorage);
const api = new Api(() => session?.token ?? null);
const app = document.getElementById("app")!;
const nav = document.getElementById("nav")!;
const who = document.getElementById("who")!;
let stopCurrent: (() => void) | undefined;

const HOME: Record<Session["role"], string> = { rider: "#/rider", driver: "#/driver", operator: "#/ops" };

function route(): void {
  stopCurrent?.();
  stopCurrent = undefined;
  const hash = location.hash || "#/";
  if (!session || hash === "#/signin") {
    nav.replaceChildren();
    who.replaceChildren();
    app.replaceChildren(signInView(api, (s) => {
      session = s;
      saveSession(sessionStorage, s);
      location.hash = HOME[s.role];
      route();
    }));
    return;
  }
  const s = session;
  const home = HOME[s.role];
  if (hash !== home) {
    location.replace(home);
    return;
  }
  const out = h("button", { type: "button", id: "sign-out", class: "link" }, "Sign out");
  out.addEventListener("click", () => {
    session = null;
    saveSession(sessionStorage, null);
    location.hash = "#/signin";
  });
  nav.replaceChildren(h("span", { class: "role" }, s.role === "operator" ? "Operations" : s.role === "rider" ? "Rider" : "Driver"));
  who.replaceChildren(h("span", { id: "subject" }, s.subject), " ", out);
  const v = s.role === "rider" ? riderView(api, s) : s.role === "driver" ? driverView(api, s) : opsView(api);
  stopCurrent = v.stop;
  app.replaceChildren(v.el);
}

window.addEventListener("hashchange", route);
route();
