-- Other APIs in front of the same router (issue 11): which API the client spoke (`chat`,
-- `embeddings`, `messages`, `responses`) and the hosted/server tool types the gateway dropped
-- because no upstream can run them (comma-separated). See src/log.rs.
ALTER TABLE requests ADD COLUMN api TEXT;
ALTER TABLE requests ADD COLUMN dropped_tools TEXT;
