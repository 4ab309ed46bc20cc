// Admins: partners (create; rotate a secret, shown once) and user roles.
// The lists (GET /partners, GET /users?email=) are used when the server has them; without them
// the page works from ids (the partners created in this visit are listed here).

import { get, idempotent, newIdempotencyKey, patch, reloadUser, supports } from "../api.js";
import { busy, confirmDialog, errorBox, field, h, notice, replace, when } from "../dom.js";

export async function page(ctx) {
  document.title = "Admin · TicketBoss";
  const [listPartners, listUsers] = await Promise.all([
    supports("partners-list", "/partners?limit=1"),
    supports("users-list", "/users?limit=1"),
  ]);
  const partners = h("section", { "aria-labelledby": "partners-title" });
  const users = h("section", { "aria-labelledby": "users-title" });
  replace(ctx.root, h("h1", {}, "Admin"), partners, users);
  await Promise.all([partnersSection(partners, listPartners, ctx), usersSection(users, listUsers, ctx)]);
}

/** The secret, shown once, with a copy button. */
function secretBox(credentials, what) {
  const copy = h("button", { type: "button" }, "Copy secret");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(credentials.clientSecret);
      copy.textContent = "Copied";
    } catch {
      copy.textContent = "Select the secret and copy it";
    }
  });
  return h(
    "div",
    { class: "notice success secret", role: "status" },
    h("p", {}, h("strong", {}, what), " Copy the secret now: it is shown once and only its hash is kept."),
    h(
      "dl",
      {},
      h("dt", {}, "Partner"),
      h("dd", {}, credentials.name),
      h("dt", {}, "Client id"),
      h("dd", {}, h("code", {}, credentials.clientId)),
      h("dt", {}, "Client secret"),
      h("dd", {}, h("code", { class: "secret-value" }, credentials.clientSecret)),
    ),
    copy,
  );
}

async function partnersSection(section, canList, ctx) {
  const result = h("div");
  const name = h("input", { type: "text", name: "name", required: true, maxlength: 200 });
  const create = h("button", { type: "submit", class: "primary" }, "Create partner");
  const form = h("form", { class: "inline-form" }, field("Partner name", name), create);
  const tbody = h("tbody");
  const table = h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, ["Partner", "Client id", "Created", ""].map((t) => h("th", { scope: "col" }, t)))),
      tbody,
    ),
  );
  const byId = h("form", { class: "inline-form" });

  const rotate = async (partner, button) => {
    const ok = await confirmDialog({
      title: `Rotate the secret of ${partner.name ?? partner.id}?`,
      body: "The old secret stops working at once; the partner must use the new one.",
      confirmLabel: "Rotate secret",
      cancelLabel: "Keep the old one",
    });
    if (!ok) return;
    await busy(button, async () => {
      try {
        const { data } = await idempotent("POST", `/partners/${encodeURIComponent(partner.id)}/rotate-secret`, undefined, newIdempotencyKey());
        replace(result, secretBox(data, "New secret made."));
      } catch (error) {
        replace(result, errorBox(error));
      }
    });
  };

  const row = (p) => {
    const button = h("button", { type: "button", "aria-label": `Rotate the secret of ${p.name}` }, "Rotate secret");
    button.addEventListener("click", () => rotate(p, button));
    return h("tr", {}, h("th", { scope: "row" }, p.name), h("td", {}, h("code", {}, p.clientId)), h("td", {}, when(p.createdAt)), h("td", {}, button));
  };

  let key = null;
  form.addEventListener("input", () => {
    key = null;
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    key ??= newIdempotencyKey();
    await busy(create, async () => {
      try {
        const { data } = await idempotent("POST", "/partners", { name: name.value.trim() }, key);
        key = null;
        replace(result, secretBox(data, `Partner ${data.name} created.`));
        tbody.prepend(row(data));
        table.hidden = false;
        form.reset();
      } catch (error) {
        replace(result, errorBox(error));
      }
    });
  });

  if (canList) {
    try {
      const { data } = await get("/partners?limit=100", { signal: ctx.signal });
      tbody.append(...data.map(row));
    } catch (error) {
      if (error.name === "AbortError") return;
      replace(result, errorBox(error));
    }
  } else {
    table.hidden = true;
    const id = h("input", { type: "text", name: "partnerId", required: true });
    const go = h("button", { type: "submit" }, "Rotate secret");
    replace(byId, field("Partner id", id), go);
    byId.addEventListener("submit", (e) => {
      e.preventDefault();
      rotate({ id: id.value.trim() }, go);
    });
  }

  replace(
    section,
    h("h2", { id: "partners-title" }, "Partners"),
    form,
    result,
    table,
    canList ? null : h("h3", {}, "Rotate a partner's secret"),
    canList ? null : byId,
  );
}

async function usersSection(section, canList, ctx) {
  const result = h("div");
  const found = h("div");
  const roleSelect = (current) =>
    h(
      "select",
      { name: "role" },
      ["user", "organizer", "admin"].map((r) => h("option", { value: r, selected: r === current }, r)),
    );

  const saveRole = async (userId, role, button) => {
    await busy(button, async () => {
      try {
        const { data } = await patch(`/users/${encodeURIComponent(userId)}`, { role }, { idempotencyKey: newIdempotencyKey() });
        replace(result, notice(`${data.name} (${data.email}) is now ${data.role}.`, "success"));
        if (data.id === ctx.user.id) await reloadUser();
      } catch (error) {
        replace(result, errorBox(error));
      }
    });
  };

  let form;
  if (canList) {
    const email = h("input", { type: "search", name: "email", required: true });
    const search = h("button", { type: "submit" }, "Find");
    form = h("form", { class: "inline-form", role: "search" }, field("User's email", email), search);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      await busy(search, async () => {
        try {
          const { data } = await get(`/users?email=${encodeURIComponent(email.value.trim())}`);
          if (!data.length) {
            replace(found, h("p", { class: "empty" }, "No user with that email."));
            return;
          }
          replace(
            found,
            h(
              "ul",
              { class: "cards" },
              data.map((u) => {
                const select = roleSelect(u.role);
                const id = `role-${u.id}`;
                select.id = id;
                const save = h("button", { type: "button" }, "Save role");
                save.addEventListener("click", () => saveRole(u.id, select.value, save));
                return h(
                  "li",
                  { class: "card" },
                  h("p", {}, h("strong", {}, u.name), ` · ${u.email}`),
                  h("div", { class: "inline-form" }, h("div", { class: "field" }, h("label", { for: id }, `Role of ${u.email}`), select), save),
                );
              }),
            ),
          );
        } catch (error) {
          replace(found, errorBox(error));
        }
      });
    });
  } else {
    const userId = h("input", { type: "text", name: "userId", required: true });
    const select = roleSelect("organizer");
    const save = h("button", { type: "submit" }, "Change role");
    form = h("form", { class: "inline-form" }, field("User id", userId), field("Role", select), save);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      saveRole(userId.value.trim(), select.value, save);
    });
  }
  replace(
    section,
    h("h2", { id: "users-title" }, "Users and roles"),
    canList ? null : h("p", { class: "hint" }, "Give the user's account id (shown to them on their My bookings page)."),
    form,
    found,
    result,
  );
}
