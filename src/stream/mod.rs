//! Building OpenAI `chat.completion.chunk` streams: shared chunk framing, the fake-stream
//! replay of a full answer, and the passthrough relay of an upstream SSE stream.

pub mod aggregate;
pub mod chunk;
pub mod fake;
pub mod relay;
pub mod translate;

pub use chunk::ChunkMeta;
