# syntax=docker/dockerfile:1
# Valhalla kernel: production image (Node 24 LTS).
#
#   docker build -t valhalla-kernel .
#   docker run -p 3000:3000 -e DATABASE_URL=postgres://user:pass@db:5432/valhalla valhalla-kernel
#
# Migrations run at start, under a PostgreSQL advisory lock, so several replicas starting
# together apply them once. To migrate as a separate deploy step instead (e.g. a Kubernetes Job
# or an init container), run the same image with:   npm run db:migrate   (or node dist/db/migrate-cli.js)
# A jobs-only worker (web replicas then set RUN_JOBS=false):   npm run worker   (or node dist/src/worker.js);
# it answers /live, /ready and /metrics on WORKER_PORT (3001).
# A new API key for ADMIN_API_KEY:   docker run --rm valhalla-kernel npm run -s key:new
# The npm scripts run dist/ as built here (scripts/run.mjs: no TypeScript needed, nothing compiled);
# `npm run test:prod-layout` checks this layout outside Docker.
# Without DATABASE_URL the embedded PGlite keeps its data in /app/data (mount a volume there).
#
# Probes: liveness GET /live (no database), readiness GET /ready (database, migrations,
# draining, pressure), both on port 3000 and without an API key.

ARG NODE_IMAGE=node:24-slim

# ---- build: compile TypeScript to dist/ ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# postinstall applies patches/ (patch-package): the postgres.js fixes must be in every install.
COPY patches ./patches
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY db ./db
COPY plugins ./plugins
RUN npm run build

# ---- runtime: production dependencies, compiled code and migrations only ----
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/app/data
WORKDIR /app
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force \
 && mkdir -p /app/data \
 && chown node:node /app/data
COPY --from=build /app/dist ./dist
# The admin console's static page, script and stylesheet (served as they are, no build step).
COPY --from=build /app/plugins/admin/console ./dist/plugins/admin/console
COPY drizzle ./drizzle
COPY scripts/run.mjs ./scripts/run.mjs

USER node
EXPOSE 3000 3001

# slim has no curl: Node's own fetch probes /live.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/live').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# The server handles SIGTERM itself: readiness fails, in-flight requests drain, jobs stop,
# batched writes flush, the database closes.
CMD ["node", "dist/src/server.js"]
