/**
 * The document id rule of the protocol (PROTOCOL.md, Limits): 1-128 characters of `[A-Za-z0-9._:/-]`, not starting
 * with `/` or `.`, no `..`. Checked here to say what is wrong before the server refuses it.
 */
export function documentIdProblem(id: string): string | null {
  if (id.length === 0) {
    return "Enter a document name.";
  }
  if (id.length > 128) {
    return "At most 128 characters.";
  }
  if (!/^[A-Za-z0-9._:/-]+$/.test(id)) {
    return "Use letters, digits and . _ : / - only.";
  }
  if (id.startsWith("/") || id.startsWith(".")) {
    return "A name cannot start with / or a dot.";
  }
  if (id.includes("..")) {
    return "A name cannot contain two dots in a row.";
  }
  return null;
}

/** A fresh id for "New document": readable, and unguessable enough not to collide. */
export function newDocumentId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  const suffix = [...bytes].map((b) => "abcdefghijkmnpqrstuvwxyz23456789"[b % 32]).join("");
  return `untitled-${suffix}`;
}

/** The path of a document's page. Ids use only URL-safe characters, so they appear as they are. */
export function documentPath(id: string): string {
  return `/d/${id}`;
}

/** The document id of the current location (`/d/<id>`), or null for the picker. */
export function documentIdFromLocation(pathname: string): string | null {
  if (!pathname.startsWith("/d/")) {
    return null;
  }
  try {
    return decodeURIComponent(pathname.slice(3));
  } catch {
    return pathname.slice(3);
  }
}
