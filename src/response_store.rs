//! Stored Responses (`store: true`): the Response object and the conversation it ends, kept
//! in D1 for `RESPONSES_TTL_HOURS` so `previous_response_id`, `GET` and `DELETE
//! /v1/responses/{id}` work. Each row belongs to the credential that created it (its SHA-256,
//! never the credential): only the same credential reads, continues or deletes it.
//! Pure: SQL statements and the conversation; the runtime runs them.

use crate::dialects::responses::items_to_messages;
use crate::log::{SqlValue, Statement};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A stored conversation larger than this is not kept (D1 rows hold at most 2 MB).
pub const MAX_ROW_BYTES: usize = 1_800_000;

/// Expired rows are removed on about one insert in this many, not on every call.
pub const TRIM_EVERY: f64 = 20.0;

/// The owner of a stored response: the SHA-256 of the credential the client presented, or
/// `public` when it presented none (an open gateway, where anyone may read it).
pub fn owner(credential: Option<&str>) -> String {
    match credential.filter(|c| !c.is_empty()) {
        Some(credential) => Sha256::digest(credential.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        None => "public".into(),
    }
}

/// One stored response.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub id: String,
    pub owner: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub model: String,
    /// The chat messages of the whole conversation, this response's answer included (the
    /// instructions apart: a next call brings its own).
    pub messages: Vec<Value>,
    pub response: Value,
}

impl StoredResponse {
    /// The row for `response`, ending the conversation `before` + `input`.
    pub fn new(
        response: Value,
        owner: String,
        mut conversation: Vec<Value>,
        now_ms: i64,
        ttl_ms: i64,
    ) -> StoredResponse {
        let output = response["output"].as_array().cloned().unwrap_or_default();
        // The answer as chat messages, the way it will be sent back upstream.
        conversation.extend(items_to_messages(&output, "output").unwrap_or_default());
        StoredResponse {
            id: response["id"].as_str().unwrap_or_default().to_string(),
            owner,
            created_ms: now_ms,
            expires_ms: now_ms + ttl_ms,
            model: response["model"].as_str().unwrap_or_default().to_string(),
            messages: conversation,
            response,
        }
    }

    pub fn insert(&self) -> Statement {
        Statement {
            sql: "INSERT OR REPLACE INTO responses (id, owner, created_ms, expires_ms, model, messages, response) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)".into(),
            params: vec![
                SqlValue::Text(self.id.clone()),
                SqlValue::Text(self.owner.clone()),
                SqlValue::Int(self.created_ms),
                SqlValue::Int(self.expires_ms),
                SqlValue::Text(self.model.clone()),
                SqlValue::Text(Value::Array(self.messages.clone()).to_string()),
                SqlValue::Text(self.response.to_string()),
            ],
        }
    }
}

/// Removes expired responses.
pub fn trim(now_ms: i64) -> Statement {
    Statement {
        sql: "DELETE FROM responses WHERE expires_ms < ?1".into(),
        params: vec![SqlValue::Int(now_ms)],
    }
}

/// A live response of `owner`: columns `messages` and `response`.
pub fn load(id: &str, owner: &str, now_ms: i64) -> Statement {
    Statement {
        sql: "SELECT messages, response FROM responses WHERE id = ?1 AND owner = ?2 AND expires_ms >= ?3".into(),
        params: vec![
            SqlValue::Text(id.to_string()),
            SqlValue::Text(owner.to_string()),
            SqlValue::Int(now_ms),
        ],
    }
}

/// Deletes a response of `owner`; `RETURNING id` tells whether one was there.
pub fn delete(id: &str, owner: &str) -> Statement {
    Statement {
        sql: "DELETE FROM responses WHERE id = ?1 AND owner = ?2 RETURNING id".into(),
        params: vec![
            SqlValue::Text(id.to_string()),
            SqlValue::Text(owner.to_string()),
        ],
    }
}

/// The stored conversation of a loaded row, or `None` when it is unreadable.
pub fn conversation(messages: &str) -> Option<Vec<Value>> {
    match serde_json::from_slice(messages.as_bytes()) {
        Ok(Value::Array(messages)) => Some(messages),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn owners_are_hashes() {
        assert_eq!(owner(None), "public");
        assert_eq!(owner(Some("")), "public");
        let hashed = owner(Some("sk-secret"));
        assert_eq!(hashed.len(), 64);
        assert!(!hashed.contains("secret"));
        assert_ne!(hashed, owner(Some("sk-other")));
    }

    #[test]
    fn a_stored_response_holds_the_whole_conversation() {
        let response = json!({"id": "resp_1", "model": "gpt-x", "output": [
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hi!"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}]});
        let before = vec![json!({"role": "user", "content": "hello"})];
        let stored = StoredResponse::new(response.clone(), owner(Some("k")), before, 1_000, 60_000);
        assert_eq!(stored.id, "resp_1");
        assert_eq!(stored.expires_ms, 61_000);
        assert_eq!(
            stored.messages,
            vec![
                json!({"role": "user", "content": "hello"}),
                json!({"role": "assistant", "content": "Hi!", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]})
            ]
        );
        let insert = stored.insert();
        assert_eq!(insert.params.len(), 7);
        assert_eq!(
            conversation(&Value::Array(stored.messages.clone()).to_string()),
            Some(stored.messages)
        );
        assert_eq!(conversation("not json"), None);
        assert!(load("resp_1", "o", 5).sql.contains("owner = ?2"));
        assert!(delete("resp_1", "o").sql.contains("owner = ?2"));
        assert_eq!(trim(9).params, vec![SqlValue::Int(9)]);
    }
}
