-- Routing across upstreams (issue 9): which upstream served each call, how many upstream
-- requests it took, and one entry per attempt (upstream, model, key hash prefix, status or
-- error, latency) as a JSON array. See src/log.rs, AttemptEntry.
ALTER TABLE requests ADD COLUMN upstream TEXT;
ALTER TABLE requests ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN attempt_log TEXT;
CREATE INDEX IF NOT EXISTS idx_requests_upstream ON requests (upstream);
