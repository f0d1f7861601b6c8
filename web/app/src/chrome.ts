/** Page furniture shared by the picker and the editor: the user's identity chip and its editor. */
import { h } from "./dom.js";
import { initials, loadIdentity, PALETTE, saveIdentity } from "./identity.js";
import type { PeerIdentity } from "./binding.js";

const listeners = new Set<(identity: PeerIdentity) => void>();
let current: PeerIdentity | null = null;

export function identity(): PeerIdentity {
  return (current ??= loadIdentity());
}

export function onIdentityChange(listener: (identity: PeerIdentity) => void): void {
  listeners.add(listener);
}

export function avatar(person: PeerIdentity, extraClass = ""): HTMLElement {
  return h("span", { class: `avatar ${extraClass}`.trim(), style: `--peer-color: ${person.color}`, title: person.name }, initials(person.name));
}

/** "You: <avatar> name" — opens a small dialog to change the name and colour. */
export function identityChip(): HTMLElement {
  const chip = h("button", { class: "identity-chip", id: "identity", title: "Your name and colour, as others see them" });
  const paint = (): void => chip.replaceChildren(avatar(identity()), h("span", { class: "identity-name" }, identity().name));
  paint();
  listeners.add(paint);
  chip.addEventListener("click", () => openIdentityDialog());
  return chip;
}

function openIdentityDialog(): void {
  const me = identity();
  let color = me.color;
  const name = h("input", { type: "text", value: me.name, maxlength: "40", "aria-label": "Your name", required: true });
  const swatches = h(
    "div",
    { class: "swatches", role: "radiogroup", "aria-label": "Your colour" },
    ...PALETTE.map((c) => {
      const swatch = h("button", { type: "button", class: "swatch", style: `--peer-color: ${c}`, role: "radio", "aria-checked": String(c === color), "aria-label": c });
      swatch.addEventListener("click", () => {
        color = c;
        for (const other of swatches.querySelectorAll(".swatch")) {
          other.setAttribute("aria-checked", String(other === swatch));
        }
      });
      return swatch;
    }),
  );
  const dialog = h(
    "dialog",
    { class: "dialog" },
    h(
      "form",
      { method: "dialog" },
      h("h2", {}, "How others see you"),
      h("label", {}, "Name", name),
      h("div", { class: "label" }, "Colour"),
      swatches,
      h("div", { class: "dialog-actions" }, h("button", { class: "button", value: "cancel", formnovalidate: true }, "Cancel"), h("button", { class: "button primary", value: "save" }, "Save")),
    ),
  );
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "save" && name.value.trim()) {
      current = { name: name.value.trim().slice(0, 40), color };
      saveIdentity(current);
      for (const listener of listeners) {
        listener(current);
      }
    }
    dialog.remove();
  });
  document.body.append(dialog);
  dialog.showModal();
  name.select();
}
