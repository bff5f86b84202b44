-- A server's ceiling on the provider calls a line keeps in flight at once (issue 13): NULL = the
-- provider's documented concurrency (Provider.max_in_flight); lower for an account with a lower
-- request rate. A line opens fewer calls when fewer keep it busy (sending.window).
ALTER TABLE servers ADD COLUMN calls_in_flight integer CHECK (calls_in_flight >= 1);
