// Log in and register (both end with a token pair kept as api.js describes); the way back in
// (forgot → the mailed link → reset), verifying an address with its mailed code, and the
// account page (a new password, a new address).

import { changePassword, currentUser, login, post, register, reloadUser } from "../api.js";
import { busy, errorBox, field, flash, h, markInvalid, notice, replace } from "../dom.js";

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
    h("p", {}, h("a", { href: "/forgot-password" }, "Forgot your password?")),
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

/** A form page: `fields` (label, input, hint?) and a submit that runs `action`, its errors shown. */
function formPage(ctx, { title, intro, fields, label, busyText, action, after = [] }) {
  document.title = `${title} · TicketBoss`;
  const errors = h("div");
  const result = h("div");
  const submit = h("button", { type: "submit", class: "primary" }, label);
  const form = h(
    "form",
    { class: "narrow stack" },
    errors,
    ...fields.map(([text, input, hint]) => field(text, input, hint)),
    submit,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    errors.replaceChildren();
    try {
      const message = await busy(submit, action, busyText);
      if (message) replace(result, notice(message, "success"));
    } catch (error) {
      markInvalid(form, error);
      replace(errors, errorBox(error));
    }
  });
  replace(ctx.root, h("h1", {}, title), h("p", {}, intro), form, result, ...after);
  fields[0][1].focus();
}

const emailInput = (value = "") =>
  h("input", { type: "email", name: "email", autocomplete: "email", required: true, value });

const newPassword = (name = "password") =>
  h("input", { type: "password", name, autocomplete: "new-password", required: true, minlength: 10, maxlength: 128 });

export async function forgotPage(ctx) {
  const email = emailInput(ctx.query.get("email") || "");
  formPage(ctx, {
    title: "Forgot your password?",
    intro: "Give the address of your account: a link to choose a new password is mailed to it.",
    fields: [["Email", email]],
    label: "Send the link",
    busyText: "Sending…",
    action: async () => {
      await post("/auth/forgot-password", { email: email.value.trim() }, { auth: false });
      return "If an account has this address, a link is on its way. It works once, for 30 minutes.";
    },
  });
}

export async function resetPage(ctx) {
  const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
  history.replaceState(null, "", location.pathname); // the token leaves the address bar
  const password = newPassword();
  formPage(ctx, {
    title: "Choose a new password",
    intro: "This signs you out everywhere.",
    fields: [["New password", password, "At least 10 characters; not a common password."]],
    label: "Set the password",
    busyText: "Saving…",
    action: async () => {
      await post("/auth/reset-password", { token, password: password.value }, { auth: false });
      flash("Your password was changed. Log in with the new one.");
      ctx.navigate("/login", { replace: true });
      return null;
    },
  });
}

export async function verifyPage(ctx) {
  const email = emailInput(ctx.query.get("email") || currentUser()?.email || "");
  const code = h("input", {
    type: "text",
    name: "code",
    inputmode: "numeric",
    autocomplete: "one-time-code",
    pattern: "[0-9]{6}",
    maxlength: 6,
    required: true,
  });
  const resend = h("button", { type: "button" }, "Send a new code");
  resend.addEventListener("click", async () => {
    try {
      await busy(resend, () => post("/auth/resend-verification", { email: email.value.trim() }, { auth: false }), "Sending…");
      flash("If this address waits for a code, a new one is on its way.");
    } catch (error) {
      flash(error.message, "error");
    }
  });
  formPage(ctx, {
    title: "Verify your email",
    intro: "Enter the 6-digit code we mailed to the address.",
    fields: [["Email", email], ["Code", code]],
    label: "Verify",
    busyText: "Checking…",
    action: async () => {
      await post("/auth/verify-email", { email: email.value.trim(), code: code.value.trim() }, { auth: false });
      if (currentUser()) await reloadUser();
      return "Verified: this address is your account's.";
    },
    after: [h("p", {}, resend)],
  });
}

export async function accountPage(ctx) {
  const current = h("input", { type: "password", name: "currentPassword", autocomplete: "current-password", required: true });
  const next = newPassword("newPassword");
  formPage(ctx, {
    title: "Change your password",
    intro: `Signed in as ${ctx.user.email}${ctx.user.emailVerified ? "" : " (not verified yet)"}. A new password signs you out everywhere else.`,
    fields: [["Current password", current], ["New password", next, "At least 10 characters; not a common password."]],
    label: "Change the password",
    busyText: "Saving…",
    action: async () => {
      await changePassword(current.value, next.value);
      current.value = next.value = "";
      return "Your password was changed.";
    },
    after: [h("p", {}, h("a", { href: "/verify-email" }, "Verify your address"))],
  });
}
