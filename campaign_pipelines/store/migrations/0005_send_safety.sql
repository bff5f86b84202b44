-- Crash safety of sending (issue 10).

-- Provider calls that may have started: written (committed) right before a call leaves and
-- deleted with its recorded results. After a crash only the contacts of these calls become
-- `unknown`; the line's other reserved contacts were never requested and go back to the pool.
CREATE TABLE inflight_calls (
    id          bigserial PRIMARY KEY,
    line_id     bigint NOT NULL REFERENCES campaign_channels (id) ON DELETE CASCADE,
    contact_ids bigint[] NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inflight_calls_line_idx ON inflight_calls (line_id);

-- daily_counters is now the record of what every line and server took each day, written in
-- the transactions that claim and release contacts, with Redis or without: the quota is
-- enforced there, and a lost Redis counter is seeded from it.
COMMENT ON TABLE daily_counters IS
    'Sends taken per counter (line:<id>, server:<id>) and day, in the server''s time zone; never above the limit.';
