/**
 * The real Collab server in its own process for integration tests: the Release (or Debug) build of src/Server run
 * with `dotnet`, a temp data directory and a free loopback port, as an operator would run it.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot } from "./paths.js";

/** The server assembly: the newer of the Release and Debug builds, built (Release) when there is none. */
export function serverAssembly(): string {
  const root = repoRoot();
  const candidates = ["Release", "Debug"]
    .map((c) => join(root, "src", "Server", "bin", c, "net10.0", "Collab.Server.dll"))
    .filter((p) => existsSync(p))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (candidates.length > 0) {
    return candidates[0]!;
  }
  const build = spawnSync("dotnet", ["build", join(root, "src", "Server"), "-c", "Release", "-nologo", "-clp:ErrorsOnly"], { stdio: "inherit" });
  if (build.status !== 0) {
    throw new Error("dotnet build of src/Server failed");
  }
  return join(root, "src", "Server", "bin", "Release", "net10.0", "Collab.Server.dll");
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0));
    });
  });
}

export class ServerProcess {
  private process: ChildProcess | null = null;
  private readonly log: string[] = [];
  readonly dataDirectory = mkdtempSync(join(tmpdir(), "collab-web-it-"));

  private constructor(
    readonly port: number,
    private readonly settings: Record<string, string>,
  ) {}

  get url(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  static async start(settings: Record<string, string> = {}): Promise<ServerProcess> {
    const server = new ServerProcess(await freePort(), settings);
    await server.startAgain();
    return server;
  }

  async startAgain(): Promise<void> {
    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      Transport__ListenAddress: "127.0.0.1",
      Storage__DataDirectory: this.dataDirectory,
      Logging__LogLevel__Default: "Warning",
      DOTNET_NOLOGO: "1",
    };
    for (const [key, value] of Object.entries(this.settings)) {
      env[key.replaceAll(":", "__")] = value;
    }
    const child = spawn("dotnet", [serverAssembly(), "--port", String(this.port)], { env, stdio: ["ignore", "pipe", "pipe"] });
    const record = (chunk: Buffer): void => {
      this.log.push(...chunk.toString().split("\n").filter(Boolean));
      this.log.splice(0, Math.max(0, this.log.length - 200));
    };
    child.stdout!.on("data", record);
    child.stderr!.on("data", record);
    this.process = child;
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) {
        throw new Error(`the server exited with ${child.exitCode}:\n${this.logTail()}`);
      }
      try {
        const response = await fetch(`http://127.0.0.1:${this.port}/readyz`);
        if (response.ok) {
          return;
        }
      } catch {
        // Not listening yet.
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the server was not ready within 60 s:\n${this.logTail()}`);
  }

  /** SIGKILL: what a crash does. */
  async kill(): Promise<void> {
    const child = this.process;
    if (child !== null && child.exitCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await exited;
    }
  }

  logTail(): string {
    return this.log.slice(-60).join("\n");
  }

  async dispose(): Promise<void> {
    await this.kill();
    rmSync(this.dataDirectory, { recursive: true, force: true });
  }
}
