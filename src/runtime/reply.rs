//! What the gateway answers its client: status, headers and body kept in Rust and made into
//! the runtime's `Response` in one crossing at the end (glue.js `respond`), instead of a
//! `worker::Response` whose every header set, read and conversion crosses into JS.
use super::glue;
use crate::error::GatewayError;
use crate::headers::HeaderList;
use worker::web_sys;

pub(crate) enum ReplyBody {
    Empty,
    Bytes(Vec<u8>),
    /// A body the runtime streams (a relay loop's `IdentityTransformStream`).
    Stream(web_sys::ReadableStream),
}

pub(crate) struct Reply {
    pub status: u16,
    pub headers: HeaderList,
    pub body: ReplyBody,
}

impl Reply {
    /// A 200 answer of `body` as `content_type`.
    pub fn bytes(body: Vec<u8>, content_type: &str) -> Reply {
        let mut headers = HeaderList::new();
        headers.set("Content-Type", content_type);
        Reply {
            status: 200,
            headers,
            body: ReplyBody::Bytes(body),
        }
    }

    pub fn text(text: &str, content_type: &str) -> Reply {
        Reply::bytes(text.as_bytes().to_vec(), content_type)
    }

    pub fn json(value: &impl serde::Serialize) -> Result<Reply, GatewayError> {
        let body = serde_json::to_vec(value)
            .map_err(|e| GatewayError::Internal(format!("an answer could not be encoded: {e}")))?;
        Ok(Reply::bytes(body, "application/json"))
    }

    pub fn empty() -> Reply {
        Reply {
            status: 200,
            headers: HeaderList::new(),
            body: ReplyBody::Empty,
        }
    }

    /// A 200 answer streamed from `body`; the caller sets its headers.
    pub fn stream(body: web_sys::ReadableStream) -> Reply {
        Reply {
            status: 200,
            headers: HeaderList::new(),
            body: ReplyBody::Stream(body),
        }
    }

    pub fn with_status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }

    /// Adds `headers` (a `set` each: they replace what the reply had).
    pub fn with_headers(mut self, headers: &HeaderList) -> Reply {
        for (name, value) in headers.iter() {
            self.headers.set(name, value);
        }
        self
    }

    /// The runtime's `Response`, made in one crossing.
    pub fn into_js(self) -> web_sys::Response {
        let lines = self.headers.to_lines();
        match self.body {
            ReplyBody::Bytes(bytes) => glue::respond_bytes(self.status, &lines, &bytes),
            ReplyBody::Stream(stream) => glue::respond_stream(self.status, &lines, Some(&stream)),
            ReplyBody::Empty => glue::respond_stream(self.status, &lines, None),
        }
    }
}
