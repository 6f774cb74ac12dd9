//! Building OpenAI `chat.completion.chunk` streams: shared chunk framing, the fake-stream
//! replay of a full answer, and the passthrough relay of an upstream SSE stream.

pub mod aggregate;
pub mod chunk;
pub mod fake;
pub mod relay;
pub mod translate;

pub use chunk::{Chunk, ChunkMeta, TextFrames};

/// How much of a streamed answer's text is kept for the request log: the log stores far
/// less anyway, and a huge stream must not grow memory for it.
pub const LOGGED_CONTENT_LIMIT: usize = 1024 * 1024;

/// Appends `text` to the logged content while it is under the limit.
pub fn keep_for_log(content: &mut String, text: &str) {
    let room = LOGGED_CONTENT_LIMIT.saturating_sub(content.len());
    if room == 0 {
        return;
    }
    let mut cut = text.len().min(room);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    content.push_str(&text[..cut]);
}
