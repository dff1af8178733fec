# syntax=docker/dockerfile:1
# xyra-scheduler: multi-stage build; the final image has production dependencies only and runs as a
# non-root user. Entry: tini (PID 1, reaps zombies) → containerInit (delivers SIGTERM to `dbos start`,
# which hands it to the service; exits with the service's outcome) → `npx dbos start` → node dist/src/main.js.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
# Sources only (.dockerignore keeps out node_modules, dist, tests, data).
COPY . .
RUN npm run build

FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# No embedded Postgres binaries in the image: compose and production give DATABASE_URL.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

FROM node:20-bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    PORT=3000 \
    XYRA_DATA_DIR=/tmp/xyra
WORKDIR /app
COPY --from=deps --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
# The dashboard's static files are served from the package (tsc does not copy them into dist).
COPY --from=build --chown=node:node /app/src/ops/dashboard/public ./src/ops/dashboard/public
COPY --chown=node:node package.json dbos-config.yaml ./
USER node
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/readyz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "node", "dist/src/ops/containerInit.js"]
CMD ["npx", "dbos", "start"]
