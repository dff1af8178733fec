// The chunk workflow's queue and registered name. A module of its own so that `xyra ingest` can name them without
// loading the workflow's code (and the DBOS SDK with it) before it starts reading the file.
export const TASKS_QUEUE = 'tasks';
export const WORKFLOW_NAME = 'processChunk';
export const WORKFLOW_CLASS = 'TaskPipeline';
