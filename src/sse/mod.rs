//! Server-sent events: an encoder that writes exact frames and an incremental parser
//! that accepts any chunking of the input.

pub mod encode;
pub mod parse;

pub use encode::{comment, data, done, json_data};
pub use parse::{SseItem, SseParser};
