// Log in and register. Both end with a token pair kept as api.js describes.

import { login, register } from "../api.js";
import { busy, errorBox, field, flash, h, markInvalid, replace } from "../dom.js";

function nextPath(query) {
  const next = query.get("next") || "/";
  return next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

export async function loginPage(ctx) {
  document.title = "Log in · TicketBoss";
  const errors = h("div");
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit", class: "primary" }, "Log in");
  const form = h(
    "form",
    { class: "narrow stack" },
    errors,
    field("Email", email),
    field("Password", password),
    submit,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    errors.replaceChildren();
    try {
      const user = await busy(submit, () => login(email.value.trim(), password.value), "Logging in…");
      flash(`Welcome back, ${user.name}.`);
      ctx.navigate(nextPath(ctx.query), { replace: true });
    } catch (error) {
      markInvalid(form, error);
      replace(errors, errorBox(error));
      password.focus();
    }
  });
  replace(
    ctx.root,
    h("h1", {}, "Log in"),
    form,
    h("p", {}, "New here? ", h("a", { href: `/register${location.search}` }, "Create an account")),
  );
  email.focus();
}

export async function registerPage(ctx) {
  document.title = "Register · TicketBoss";
  const errors = h("div");
  const name = h("input", { type: "text", name: "name", autocomplete: "name", required: true, maxlength: 100 });
  const email = h("input", { type: "email", name: "email", autocomplete: "email", required: true });
  const password = h("input", {
    type: "password",
    name: "password",
    autocomplete: "new-password",
    required: true,
    minlength: 10,
    maxlength: 128,
  });
  const submit = h("button", { type: "submit", class: "primary" }, "Create account");
  const form = h(
    "form",
    { class: "narrow stack" },
    errors,
    field("Name", name),
    field("Email", email),
    field("Password", password, "At least 10 characters; not a common password."),
    submit,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    errors.replaceChildren();
    try {
      const user = await busy(
        submit,
        () => register(name.value.trim(), email.value.trim(), password.value),
        "Creating your account…",
      );
      flash(`Welcome, ${user.name}. You are logged in.`);
      ctx.navigate(nextPath(ctx.query), { replace: true });
    } catch (error) {
      markInvalid(form, error);
      replace(errors, errorBox(error));
    }
  });
  replace(
    ctx.root,
    h("h1", {}, "Create an account"),
    form,
    h("p", {}, "Have an account? ", h("a", { href: `/login${location.search}` }, "Log in")),
  );
  name.focus();
}
