-- Reports read a campaign's events one slice of contact ids at a time (issue 11): with kind,
-- flag, link and time in the index, a slice is one index-only range scan, never a pass over the
-- heap pages of every campaign's events.
CREATE INDEX tracking_events_report_idx ON tracking_events (campaign_id, contact_id)
    INCLUDE (kind, flag, link_idx, occurred_at);
DROP INDEX tracking_events_campaign_contact_idx;

-- Provider events had no index by campaign: each report read every campaign's.
CREATE INDEX delivery_events_report_idx ON delivery_events (campaign_id, contact_id) INCLUDE (event)
    WHERE contact_id IS NOT NULL;
