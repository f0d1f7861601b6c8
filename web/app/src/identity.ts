/**
 * Who this browser is to the other users: a name and a colour, kept in localStorage (not secret: they travel in the
 * presence of every open document). A first visit gets a friendly random name, which the user can change.
 */
import type { PeerIdentity } from "./binding.js";

const KEY = "collab.identity";

/** Distinct, readable on white, and readable as a label background with white text. */
export const PALETTE = ["#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#dc2626", "#0891b2", "#4d7c0f", "#c026d3", "#ea580c"];

const ADJECTIVES = ["Amber", "Brisk", "Calm", "Clever", "Daring", "Gentle", "Lucky", "Merry", "Nimble", "Quiet", "Swift", "Witty"];
const ANIMALS = ["Badger", "Crane", "Falcon", "Fox", "Heron", "Koala", "Lynx", "Otter", "Panda", "Robin", "Seal", "Wren"];

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)]!;
}

export function loadIdentity(): PeerIdentity {
  try {
    const stored = JSON.parse(localStorage.getItem(KEY) ?? "null") as Partial<PeerIdentity> | null;
    if (stored && typeof stored.name === "string" && stored.name.trim() && typeof stored.color === "string" && PALETTE.includes(stored.color)) {
      return { name: stored.name.trim().slice(0, 64), color: stored.color };
    }
  } catch {
    // Unreadable or unavailable storage: a fresh identity for this page.
  }
  const identity = { name: `${pick(ADJECTIVES)} ${pick(ANIMALS)}`, color: pick(PALETTE) };
  saveIdentity(identity);
  return identity;
}

export function saveIdentity(identity: PeerIdentity): void {
  try {
    localStorage.setItem(KEY, JSON.stringify(identity));
  } catch {
    // Private mode or full storage: the identity lasts for this page only.
  }
}

/** Up to two initials for an avatar. */
export function initials(name: string): string {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.length >= 2 ? [words[0]!, words[words.length - 1]!].map((w) => [...w][0]) : [...(words[0] ?? "?")].slice(0, 2);
  return letters.join("").toUpperCase();
}
