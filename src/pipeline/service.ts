// The pipeline's part of the running service (filled in by the pipeline work): configure the chunk
// workflow's dependencies before DBOS launches, register the `tasks` queue after.
import type { Knex } from 'knex';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';

export function configurePipeline(_config: Config, _knex: Knex, _logger: Logger): void {}

export async function registerPipelineQueue(_config: Config): Promise<void> {}
