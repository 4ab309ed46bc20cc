// The front's entry point: a tiny router over real URLs (the server answers each of them with
// the same shell), the navigation bar, and the session.

import { currentUser, logout, onSessionChange, restoreSession } from "./api.js";
import { ageFlash, errorBox, flash, h, replace } from "./dom.js";
import * as admin from "./pages/admin.js";
import * as auth from "./pages/auth.js";
import * as bookings from "./pages/bookings.js";
import * as codes from "./pages/codes.js";
import * as event from "./pages/event.js";
import * as events from "./pages/events.js";
import * as organizer from "./pages/organizer.js";
import * as sales from "./pages/sales.js";
import * as scan from "./pages/scan.js";
import * as ticket from "./pages/ticket.js";
import * as waitlists from "./pages/waitlists.js";

const ROUTES = [
  [/^\/$/, events.page],
  [/^\/login$/, auth.loginPage],
  [/^\/register$/, auth.registerPage],
  [/^\/forgot-password$/, auth.forgotPage],
  [/^\/reset-password$/, auth.resetPage],
  [/^\/verify-email$/, auth.verifyPage],
  [/^\/account$/, auth.accountPage, { login: true }],
  [/^\/events\/([^/]+)$/, event.page],
  [/^\/bookings$/, bookings.page, { login: true }],
  [/^\/tickets\/([^/]+)$/, ticket.page, { login: true }],
  [/^\/organizer$/, organizer.dashboard, { roles: ["organizer", "admin"] }],
  [/^\/organizer\/events\/new$/, organizer.editor, { roles: ["organizer", "admin"] }],
  [/^\/organizer\/events\/([^/]+)\/edit$/, organizer.editor, { roles: ["organizer", "admin"] }],
  [/^\/organizer\/events\/([^/]+)\/sales$/, sales.page, { roles: ["organizer", "admin"] }],
  [/^\/organizer\/events\/([^/]+)\/codes$/, codes.page, { roles: ["organizer", "admin"] }],
  [/^\/organizer\/events\/([^/]+)\/waitlist$/, waitlists.page, { roles: ["organizer", "admin"] }],
  [/^\/admin$/, admin.page, { roles: ["admin"] }],
  [/^\/scan$/, scan.page],
];

const main = document.getElementById("main");
let current = null; // { controller } of the page on screen

/** Go to an in-app URL without reloading. */
export function navigate(url, { replace: replaceState = false } = {}) {
  if (replaceState) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  render();
}

function match(pathname) {
  for (const [pattern, handler, rules = {}] of ROUTES) {
    const found = pattern.exec(pathname);
    if (found) return { handler, rules, params: found.slice(1).map(decodeURIComponent) };
  }
  return null;
}

async function render() {
  current?.controller.abort(); // stops the previous page's timers and streams
  const controller = new AbortController();
  current = { controller };
  renderNav(currentUser()); // the "current page" mark
  ageFlash();
  const url = new URL(location.href);
  const route = match(url.pathname);
  const ctx = {
    root: main,
    params: route?.params ?? [],
    query: url.searchParams,
    signal: controller.signal,
    navigate,
    user: currentUser(),
  };
  main.setAttribute("aria-busy", "true");
  try {
    if (!route) {
      replace(main, h("h1", { tabindex: "-1" }, "Page not found"), h("p", {}, h("a", { href: "/" }, "See the events")));
    } else if ((route.rules.login || route.rules.roles) && !ctx.user) {
      const next = encodeURIComponent(url.pathname + url.search);
      navigate(`/login?next=${next}`, { replace: true });
      return;
    } else if (route.rules.roles && !route.rules.roles.includes(ctx.user.role)) {
      document.title = "Not allowed · TicketBoss";
      replace(
        main,
        h("h1", { tabindex: "-1" }, "Not allowed"),
        h("p", {}, `This page is for ${route.rules.roles.join(" and ")} accounts.`),
      );
    } else {
      await route.handler(ctx);
    }
  } catch (error) {
    if (error?.name === "AbortError" || controller.signal.aborted) return;
    replace(main, h("h1", { tabindex: "-1" }, "Something went wrong"), errorBox(error));
  } finally {
    if (current?.controller === controller) main.removeAttribute("aria-busy");
  }
  if (!controller.signal.aborted) {
    const heading = main.querySelector("h1");
    if (heading && document.activeElement === document.body) {
      heading.setAttribute("tabindex", "-1");
      heading.focus({ preventScroll: true });
    }
  }
}

function renderNav(user) {
  const nav = document.getElementById("nav");
  const here = location.pathname;
  const link = (href, text) =>
    h("a", { href, "aria-current": here === href || (href !== "/" && here.startsWith(href)) ? "page" : null }, text);
  const items = [link("/", "Events")];
  if (user) {
    items.push(link("/bookings", "My bookings"));
    if (user.role === "organizer" || user.role === "admin") items.push(link("/organizer", "Organizer"));
    if (user.role === "admin") items.push(link("/admin", "Admin"));
    items.push(
      h("span", { class: "who" }, link("/account", user.name)),
      h(
        "button",
        {
          type: "button",
          class: "link",
          onclick: async (e) => {
            e.currentTarget.disabled = true;
            await logout();
            flash("You are logged out.");
            navigate("/");
          },
        },
        "Log out",
      ),
    );
  } else {
    items.push(link("/login", "Log in"), link("/register", "Register"));
  }
  replace(nav, h("ul", {}, items.map((item) => h("li", {}, item))));
}

// In-app links navigate without a reload; anything else (new tab, download, /docs) is left alone.
document.addEventListener("click", (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest?.("a[href]");
  if (!a || a.target || a.hasAttribute("download")) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !match(url.pathname)) return;
  e.preventDefault();
  if (url.href !== location.href) navigate(url.pathname + url.search + url.hash);
});

window.addEventListener("popstate", render);

onSessionChange((user) => {
  renderNav(user);
});

async function boot() {
  await restoreSession();
  await render();
  document.body.dataset.ready = "true"; // for tests and screenshots: the first page is drawn
}

boot();
