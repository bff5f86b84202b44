-- Step outputs of runs whose steps run on Celery workers (issue 13): every worker reaches this
-- database, not each other's disks. Only ids and small summaries pass between steps.

CREATE TABLE step_outputs (
    -- Dagster's identifier of the output: run id, step key, output name (and mapping key), joined by '/'.
    key text PRIMARY KEY,
    -- The pickled value, as Dagster's own filesystem IO manager writes it.
    value bytea NOT NULL,
    -- A few hundred bytes a step: docs/deploy.md says how to clear old runs' rows by this date.
    stored_at timestamptz NOT NULL DEFAULT now()
);
