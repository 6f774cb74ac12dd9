-- The request log: one row per proxied chat call (see src/log.rs for what each column holds).
CREATE TABLE IF NOT EXISTS requests (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  request_id TEXT NOT NULL,
  created_at TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  method TEXT NOT NULL,
  path TEXT NOT NULL,
  provider TEXT,
  model TEXT,
  stream INTEGER NOT NULL DEFAULT 0,
  fake_stream INTEGER NOT NULL DEFAULT 0,
  status INTEGER NOT NULL,
  first_byte_ms INTEGER,
  total_ms INTEGER,
  prompt_tokens INTEGER,
  completion_tokens INTEGER,
  total_tokens INTEGER,
  client_ip TEXT,
  origin TEXT,
  user_agent TEXT,
  request_headers TEXT NOT NULL DEFAULT '{}',
  response_headers TEXT NOT NULL DEFAULT '{}',
  request_body TEXT,
  response_body TEXT,
  error TEXT
);
CREATE INDEX IF NOT EXISTS idx_requests_created_ms ON requests (created_ms);
CREATE INDEX IF NOT EXISTS idx_requests_model ON requests (model);
CREATE INDEX IF NOT EXISTS idx_requests_request_id ON requests (request_id);
