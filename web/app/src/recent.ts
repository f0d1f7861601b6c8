/** Documents opened in this browser, most recent first (localStorage; ids only, never content). */
const KEY = "collab.recent";
const MAX = 30;

export interface RecentDocument {
  id: string;
  openedAt: number;
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

export function rememberDocument(id: string): void {
  save([{ id, openedAt: Date.now() }, ...recentDocuments().filter((d) => d.id !== id)]);
}

export function forgetDocument(id: string): void {
  save(recentDocuments().filter((d) => d.id !== id));
}
