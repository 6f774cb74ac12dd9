//! edge-llm-gateway: an OpenAI-compatible LLM API gateway for Cloudflare Workers.
//!
//! Everything but `runtime` is pure Rust and tested natively with `cargo test`;
//! `runtime` (wasm32 only) binds it to the Workers runtime: routing, env, fetch, streams.

pub mod adapters;
pub mod auth;
pub mod config;
pub mod cors;
pub mod dialects;
pub mod embeddings;
pub mod error;
pub mod headers;
pub mod keys;
pub mod limits;
pub mod log;
pub mod models;
pub mod openai;
pub mod proxy;
pub mod response_store;
pub mod route;
pub mod router;
pub mod scrub;
pub mod sse;
pub mod status;
pub mod stream;
pub mod upstreams;

#[cfg(target_arch = "wasm32")]
mod runtime;

/// Crate version and git revision, embedded by build.rs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_REVISION: &str = env!("GATEWAY_GIT_REVISION");

/// A parsed JSON value read as `T` through its text: every type is then decoded by one
/// deserializer (serde_json's byte reader) rather than also by the `Value` one, which would
/// put a second copy of each type's decoding code in the bundle (README "Performance").
pub(crate) fn from_json_value<T: serde::de::DeserializeOwned>(
    value: &serde_json::Value,
) -> serde_json::Result<T> {
    serde_json::from_slice(&serde_json::to_vec(value)?)
}
