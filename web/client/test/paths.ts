import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (the directory holding Collab.sln), found upwards from this file. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "Collab.sln"))) {
    const parent = dirname(dir);
    if (parent === dir) {
      throw new Error("Collab.sln not found above the tests.");
    }
    dir = parent;
  }
  return dir;
}
