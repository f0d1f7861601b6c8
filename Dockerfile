# Collab server image. Multi-stage: build with the SDK, run on the ASP.NET Core runtime.
# Build: docker build -t collab .    Run: docker run -p 8080:8080 -v collab-data:/data collab
# Publish only the WebSocket port (8080). The management port (9090: /healthz, /readyz, /metrics, no authentication)
# must stay private: reach it from the orchestrator's probes and Prometheus inside the cluster network, never publish
# it on a public interface (docs/OPERATIONS.md).
# The browser page (web/: the SDK and the editor page) is built with Node.js in a stage of its own; the server's build
# takes its output (web/app/dist) and publishes it as wwwroot, without Node (BuildWebPage=false: src/Server/Web/Web.targets).
FROM node:20-bookworm-slim AS web
WORKDIR /src
COPY src/Protocol/Protos/ src/Protocol/Protos/
COPY web/package.json web/package-lock.json web/
COPY web/client/package.json web/client/
COPY web/app/package.json web/app/
RUN cd web && npm ci --no-audit --no-fund --loglevel=error
COPY web/ web/
RUN cd web && npm run build

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props Collab.sln ./
COPY src/ src/
COPY --from=web /src/web/app/dist/ web/app/dist/
# ReadyToRun: hot paths start precompiled instead of at tier 0, so a (re)started node needs less of its first
# half-minute of JIT work before it reaches full capacity (docs/PERFORMANCE.md, load-test finding 11).
RUN dotnet publish src/Server/Collab.Server.csproj -c Release -o /app --nologo --use-current-runtime --self-contained false -p:PublishReadyToRun=true -p:BuildWebPage=false

FROM mcr.microsoft.com/dotnet/aspnet:10.0
WORKDIR /app
COPY --from=build /app ./
# Non-root user; the embedded store lives on a volume.
RUN useradd --system --uid 10001 collab && mkdir -p /data && chown collab /data
USER collab
# Configuration keys come from unprefixed environment variables (Transport__ManagementPort = Transport:ManagementPort);
# COLLAB_PORT and COLLAB_DATA_DIR are the server's own shortcuts. Probes and Prometheus go to the management port,
# served on dedicated threads so they answer while client work saturates the server (docs/PERFORMANCE.md, finding 15).
ENV COLLAB_PORT=8080 \
    COLLAB_DATA_DIR=/data \
    Transport__ManagementPort=9090 \
    DOTNET_gcServer=0
EXPOSE 8080 9090
VOLUME ["/data"]
# SIGTERM starts a graceful drain (close 1001 to clients, flush the op log) within ShutdownTimeout.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=2s CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${Transport__ManagementPort} && printf 'GET /healthz HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' >&3 && grep -q '200' <&3"]
ENTRYPOINT ["dotnet", "Collab.Server.dll"]
