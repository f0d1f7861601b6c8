/** A small element builder: the page has no framework. */
type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | boolean | ((event: Event) => void)> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (typeof value === "function") {
      element.addEventListener(name.replace(/^on/, "").toLowerCase(), value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else if (value !== false) {
      element.setAttribute(name, value);
    }
  }
  element.append(...children.filter((c): c is Node | string => c !== null && c !== undefined && c !== false));
  return element;
}

/** "just now", "5 min ago", "yesterday", or a date. */
export function relativeTime(at: number, now = Date.now()): string {
  const seconds = Math.max(0, Math.round((now - at) / 1000));
  if (seconds < 45) {
    return "just now";
  }
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) {
    return `${minutes} min ago`;
  }
  const hours = Math.round(minutes / 60);
  if (hours < 24) {
    return `${hours} h ago`;
  }
  const days = Math.round(hours / 24);
  if (days === 1) {
    return "yesterday";
  }
  if (days < 7) {
    return `${days} days ago`;
  }
  return new Date(at).toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
}

/** The logo mark: two overlapping carets. */
export function logo(): HTMLElement {
  const link = h("a", { class: "brand", href: "/", "aria-label": "Collab: all documents" });
  link.innerHTML =
    '<svg viewBox="0 0 32 32" width="26" height="26" aria-hidden="true"><rect width="32" height="32" rx="8" fill="#2563eb"/>' +
    '<path d="M11 8v16" stroke="#fff" stroke-width="3" stroke-linecap="round"/><path d="M20 8v16" stroke="#93c5fd" stroke-width="3" stroke-linecap="round"/>' +
    '<circle cx="20" cy="8" r="3" fill="#93c5fd"/><circle cx="11" cy="24" r="3" fill="#fff"/></svg><span>Collab</span>';
  return link;
}
