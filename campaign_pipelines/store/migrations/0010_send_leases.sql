-- Send bookkeeping without updating contact rows (issue 13): a contact table is written by its
-- import only. A line leases contacts (send_leases: one row per claim, its contacts' ids), takes
-- them off the campaign's cursor (send_cursors: the highest id handed out) or from the contacts
-- given back (send_returns), and appends their results to the campaign's outcome table
-- (outcomes_campaign_<id>). A contact is in one place at a time: ahead of the cursor, in a lease,
-- given back, or with its outcome.

-- A worker of the previous version may still be sending: its runs lose their lines first (every
-- write and call of a run is fenced by its run id, and notes a call in flight the same way in both
-- versions), so none calls for a contact it reserved, made pending again below. The row locks,
-- held until this migration commits, make a note being written wait, then see its line lost.
-- Their lines are relaunched as any line whose run stopped heartbeating.
UPDATE campaign_channels SET run_id = NULL WHERE run_id IS NOT NULL;

CREATE TABLE send_cursors (
    campaign_id bigint PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    last_id     bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE send_cursors IS
    'Per campaign, the highest contact id a line has leased: contacts above it were never claimed.';

CREATE TABLE send_leases (
    id          bigserial PRIMARY KEY,
    campaign_id bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    line_id     bigint NOT NULL REFERENCES campaign_channels (id) ON DELETE CASCADE,
    contact_ids bigint[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX send_leases_line_idx ON send_leases (line_id);
-- A lease's and a call's ids are stored as they come, never compressed: a thousand ids took
-- 1.56 ms to insert compressed as text, 0.56 ms uncompressed and sent binary.
ALTER TABLE send_leases ALTER COLUMN contact_ids SET STORAGE EXTERNAL;
ALTER TABLE inflight_calls ALTER COLUMN contact_ids SET STORAGE EXTERNAL;
CREATE INDEX send_leases_campaign_idx ON send_leases (campaign_id);
COMMENT ON TABLE send_leases IS
    'Contacts a line claimed and has not settled: deleted once each has its outcome or went back to send_returns.';

CREATE TABLE send_returns (
    campaign_id bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    contact_id  bigint NOT NULL,
    PRIMARY KEY (campaign_id, contact_id)
);
COMMENT ON TABLE send_returns IS
    'Contacts behind the cursor to send again: claimed but never requested, or unknown ones an operator put back.';

-- Existing campaigns: each contact table's send columns become its outcome table. A contact
-- reserved by a call that may have left is unknown, as recovery would make it; one reserved
-- and never requested is pending again (the cursor starts at 0 and claims skip contacts with an
-- outcome).
DO $$
DECLARE
    campaign record;
    contacts text;
    outcomes text;
BEGIN
    FOR campaign IN SELECT id FROM campaigns LOOP
        contacts := format('contacts_campaign_%s', campaign.id);
        outcomes := format('outcomes_campaign_%s', campaign.id);
        INSERT INTO send_cursors (campaign_id) VALUES (campaign.id);
        CONTINUE WHEN to_regclass(contacts) IS NULL;
        EXECUTE format(
            'CREATE TABLE %I (contact_id bigint PRIMARY KEY, line_id bigint, status smallint NOT NULL,'
            ' message_id text, error text, at timestamptz NOT NULL DEFAULT now())', outcomes);
        EXECUTE format(
            'INSERT INTO %I (contact_id, line_id, status, message_id, error, at)'
            ' SELECT c.id, c.channel_id, CASE WHEN c.send_status = 1 THEN 4 ELSE c.send_status END,'
            ' c.message_id, c.error, coalesce(c.attempted_at, now()) FROM %I c'
            ' WHERE c.send_status IN (2, 3, 4, 5) OR (c.send_status = 1 AND c.id IN'
            ' (SELECT unnest(f.contact_ids) FROM inflight_calls f JOIN campaign_channels l ON l.id = f.line_id'
            ' WHERE l.campaign_id = %s))', outcomes, contacts, campaign.id);
        EXECUTE format(
            'UPDATE campaign_channels l SET unknown_count = l.unknown_count + f.n FROM'
            ' (SELECT f.line_id, count(*) AS n FROM inflight_calls f CROSS JOIN LATERAL unnest(f.contact_ids) AS i(id)'
            ' JOIN %I c ON c.id = i.id AND c.send_status = 1 GROUP BY f.line_id) f'
            ' WHERE l.id = f.line_id AND l.campaign_id = %s', contacts, campaign.id);
        EXECUTE format(
            'ALTER TABLE %I DROP COLUMN send_status, DROP COLUMN channel_id, DROP COLUMN message_id,'
            ' DROP COLUMN error, DROP COLUMN attempted_at', contacts);
    END LOOP;
    DELETE FROM inflight_calls;
END $$;
