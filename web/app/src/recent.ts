/** Documents opened in this browser, most recent first (localStorage; ids only, never content). */
const KEY = "collab.recent";
const MAX = 30;

export interface RecentDocument {
  id: string;
  openedAt: number;
  /** The document's OT type (`text-unicode`, `rich-text`), as it was when opened here; absent in older entries. */
  type?: string;
}

export function recentDocuments(): RecentDocument[] {
  try {
    const list = JSON.parse(localStorage.getItem(KEY) ?? "[]") as unknown;
    if (!Array.isArray(list)) {
      return [];
    }
    return list
      .filter((d): d is RecentDocument => typeof d === "object" && d !== null && typeof d.id === "string" && typeof d.openedAt === "number")
      .sort((a, b) => b.openedAt - a.openedAt);
  } catch {
    return [];
  }
}

function save(list: RecentDocument[]): void {
  try {
    localStorage.setItem(KEY, JSON.stringify(list.slice(0, MAX)));
  } catch {
    // Storage unavailable: the list is a convenience.
  }
}

export function rememberDocument(id: string, type: string): void {
  save([{ id, openedAt: Date.now(), type }, ...recentDocuments().filter((d) => d.id !== id)]);
}

export function forgetDocument(id: string): void {
  save(recentDocuments().filter((d) => d.id !== id));
}
