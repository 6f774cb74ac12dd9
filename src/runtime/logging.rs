//! Records each proxied call and writes it to D1 after the response is done
//! (`ctx.wait_until`), so logging never delays or breaks a response. A failed write only
//! shows in the Worker's log.

use super::access::Charge;
use super::glue::{d1_first, d1_prepare, d1_rows, decode};
use super::now_ms;
use crate::config::LogSettings;
use crate::log::AttemptEntry;
use crate::log::{self, LogRecord, Statement};
use crate::scrub::Scrubber;
use futures::channel::oneshot;
use serde_json::Value;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::JsCast;
use worker::{console_error, Context, D1Database, D1PreparedStatement, Delay};

/// A handle to the record of one call. Clones share it; when the last clone is dropped
/// (the handler finished and, for streams, the stream ended or the client left), the
/// record is final and the write starts.
#[derive(Clone)]
pub struct LogTap {
    inner: Rc<Flush>,
}

struct Flush {
    record: Rc<RefCell<LogRecord>>,
    /// Whether the record is written (logging on, `DB` bound).
    stores: bool,
    /// The access key (or client IP) the call's tokens are charged to, once admitted.
    charge: Rc<RefCell<Option<Charge>>>,
    /// Bytes of the request and of the answer: the token estimate when no usage came.
    sizes: Rc<Cell<(usize, usize)>>,
    /// Set when the call was refused for its access token: only counted, no row.
    refused: Rc<Cell<bool>>,
    scrubber: Rc<Scrubber>,
    started_ms: f64,
    settings: LogSettings,
    /// Dropping it wakes the writer.
    _done: oneshot::Sender<()>,
}

impl Drop for Flush {
    fn drop(&mut self) {
        let mut record = self.record.borrow_mut();
        if record.total_ms.is_none() {
            // Only a stream that never finished gets here: the client went away.
            record.total_ms = Some((now_ms() - self.started_ms) as i64);
            if record.error.is_none() {
                record.error = Some("the client disconnected before the response finished".into());
            }
        }
    }
}

impl LogTap {
    /// Starts a record and schedules, for when the call is done, its write (with `db`) and
    /// the charge of its tokens (once `charge_to` names where).
    pub fn start(
        ctx: &Context,
        db: Option<D1Database>,
        settings: &LogSettings,
        record: LogRecord,
        scrubber: Rc<Scrubber>,
    ) -> LogTap {
        let db_bound = db.is_some();
        let (sender, receiver) = oneshot::channel::<()>();
        let shared = Rc::new(RefCell::new(record));
        let refused = Rc::new(Cell::new(false));
        let charge = Rc::new(RefCell::new(None::<Charge>));
        let sizes = Rc::new(Cell::new((0usize, 0usize)));
        let (for_writer, refused_for_writer) = (shared.clone(), refused.clone());
        let (charge_for_writer, sizes_for_writer) = (charge.clone(), sizes.clone());
        let scrubber_for_writer = scrubber.clone();
        let max_rows = settings.max_rows;
        let sample_ppm = settings.sample_ppm;
        ctx.wait_until(async move {
            // Resolves (as cancelled) when the last tap is dropped.
            let _ = receiver.await;
            let pending = charge_for_writer.borrow_mut().take();
            if let Some(pending) = pending {
                let (status, usage) = {
                    let r = for_writer.borrow();
                    (
                        r.status,
                        [r.total_tokens, r.prompt_tokens, r.completion_tokens],
                    )
                };
                let (request_bytes, answer_bytes) = sizes_for_writer.get();
                let tokens =
                    crate::keys::tokens_to_charge(status, usage, request_bytes, answer_bytes);
                pending.tokens(tokens, &scrubber_for_writer).await;
            }
            let Some(db) = db else { return };
            if refused_for_writer.get() {
                write_refusal(&db, &scrubber_for_writer).await;
                return;
            }
            if !log::sampled(&for_writer.borrow(), sample_ppm, js_sys::Math::random()) {
                return;
            }
            // Every tap is gone (that is what woke this writer): the record is final, take it.
            let mut record = std::mem::take(&mut *for_writer.borrow_mut());
            record.scrub(&scrubber_for_writer);
            write(&db, record, max_rows, &scrubber_for_writer).await;
        });
        LogTap {
            inner: Rc::new(Flush {
                stores: db_bound,
                record: shared,
                charge,
                sizes,
                refused,
                scrubber,
                started_ms: now_ms(),
                settings: settings.clone(),
                _done: sender,
            }),
        }
    }

    /// Whether this record becomes a log row (else the tap only charges tokens).
    pub fn stores(&self) -> bool {
        self.inner.stores
    }

    /// The call was admitted under limits that count tokens: charge them when it is done.
    pub fn charge_to(&self, charge: Charge) {
        *self.inner.charge.borrow_mut() = Some(charge);
    }

    pub fn request_size(&self, bytes: usize) {
        let (_, answer) = self.inner.sizes.get();
        self.inner.sizes.set((bytes, answer));
    }

    fn answer_size(&self, bytes: usize) {
        let (request, _) = self.inner.sizes.get();
        self.inner.sizes.set((request, bytes));
    }

    pub fn update(&self, change: impl FnOnce(&mut LogRecord)) {
        change(&mut self.inner.record.borrow_mut());
    }

    fn elapsed(&self) -> i64 {
        (now_ms() - self.inner.started_ms) as i64
    }

    pub fn first_byte(&self) {
        self.first_byte_at(now_ms());
    }

    /// Marks the first byte at `at_ms` (`now_ms()` time); only the first call counts.
    pub fn first_byte_at(&self, at_ms: f64) {
        let elapsed = (at_ms - self.inner.started_ms) as i64;
        self.update(|r| {
            r.first_byte_ms.get_or_insert(elapsed);
        });
    }

    /// Marks the first content token sent now (only the first call counts).
    pub fn first_token(&self) {
        let elapsed = self.elapsed();
        self.update(|r| {
            r.first_token_ms.get_or_insert(elapsed);
        });
    }

    /// Marks the response complete now.
    pub fn finished(&self) {
        let elapsed = self.elapsed();
        self.update(|r| {
            r.total_ms.get_or_insert(elapsed);
        });
    }

    /// The call was refused for a missing or wrong access token: it is counted, not stored.
    pub fn refuse(&self) {
        self.inner.refused.set(true);
    }

    /// Stores a body if bodies are logged, cut at the configured size. Known secrets go
    /// first, so a cut can never leave part of one.
    pub fn body_text(&self, text: &str) -> Option<String> {
        if !self.inner.settings.bodies {
            return None;
        }
        let scrubbed = self.inner.scrubber.known(text.as_bytes());
        let scrubbed = match scrubbed {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
        };
        Some(log::truncate_body(
            &scrubbed,
            self.inner.settings.max_body_bytes,
        ))
    }

    pub fn response_body(&self, text: &str) {
        self.answer_size(text.len());
        let body = self.body_text(text);
        self.update(|r| r.response_body = body);
    }

    pub fn usage(&self, usage: Option<&Value>) {
        if let Some(usage) = usage {
            self.update(|r| r.set_usage(usage));
        }
    }

    pub fn error(&self, message: String) {
        self.update(|r| r.error = Some(message));
    }

    /// One upstream attempt, appended to the call's attempt log; the call's upstream and
    /// provider kind become those of this (latest) attempt.
    pub fn attempt(&self, entry: AttemptEntry, kind: &str) {
        self.update(|r| {
            let mut entries: Vec<AttemptEntry> = r
                .attempt_log
                .as_deref()
                .and_then(|text| serde_json::from_slice(text.as_bytes()).ok())
                .unwrap_or_default();
            r.upstream = Some(entry.upstream.clone());
            r.provider = Some(kind.to_string());
            entries.push(entry);
            r.attempts = entries.len() as i64;
            r.attempt_log = serde_json::to_string(&entries).ok();
        });
    }

    /// A stream ended: its text, usage and error, and the total time.
    pub fn stream_done(
        &self,
        content: &str,
        usage: Option<&Value>,
        error: Option<&str>,
        generated_bytes: usize,
    ) {
        self.response_body(content);
        // The logged content may be cut; an estimate counts everything generated.
        self.answer_size(generated_bytes.max(content.len()));
        self.usage(usage);
        if let Some(error) = error {
            self.error(error.to_string());
        }
        self.finished();
    }
}

pub(super) fn prepare(
    db: &D1Database,
    statement: &Statement,
) -> worker::Result<D1PreparedStatement> {
    // The parameters cross as one JSON array rather than one value each.
    let params = serde_json::to_string(&statement.params)?;
    let prepared = d1_prepare(db.as_ref(), &statement.sql, &params)?;
    Ok(D1PreparedStatement::from(
        prepared.unchecked_into::<worker::worker_sys::D1PreparedStatement>(),
    ))
}

/// Runs a query and decodes its rows.
pub async fn rows<T: serde::de::DeserializeOwned>(
    db: &D1Database,
    statement: &Statement,
) -> worker::Result<Vec<T>> {
    let prepared = prepare(db, statement)?;
    decode(d1_rows(prepared.inner())).await
}

/// Runs a query and decodes its first row (or one column of it).
pub async fn first<T: serde::de::DeserializeOwned>(
    db: &D1Database,
    statement: &Statement,
    column: Option<&str>,
) -> worker::Result<Option<T>> {
    let prepared = prepare(db, statement)?;
    decode(d1_first(prepared.inner(), column)).await
}

/// Runs one statement for its effect.
pub async fn run(db: &D1Database, statement: &Statement) -> worker::Result<()> {
    prepare(db, statement)?.run().await.map(|_| ())
}

async fn run_batch(db: &D1Database, statements: &[Statement]) -> worker::Result<()> {
    let prepared = statements
        .iter()
        .map(|s| prepare(db, s))
        .collect::<worker::Result<Vec<D1PreparedStatement>>>()?;
    db.batch(prepared).await.map(|_| ())
}

thread_local! {
    /// Rows this isolate has written: every `log::trim_every`-th write also trims the table.
    static WRITES: Cell<u64> = const { Cell::new(0) };
    /// The batch that writes ending now join, until it is sent.
    static OPEN: RefCell<Option<OpenBatch>> = const { RefCell::new(None) };
    static BATCHES_OPENED: Cell<u64> = const { Cell::new(0) };
}

/// How long an opened batch waits for more writes: calls ending within it share one D1
/// call. Measured on Miniflare (`bench/compare.mjs log`), a logged call cost 28% less with
/// a window of 0 ms than with one call per row, and 10 ms took another 10% off.
const BATCH_WINDOW_MS: u64 = 10;
/// A batch still open this long after it opened lost its sender (its invocation ended
/// early): the next call to find it sends it.
const BATCH_STALE_MS: f64 = 1000.0;

/// Reports a group's failed write (each writer scrubs its own line).
type OnError = Box<dyn FnOnce(&str)>;

struct OpenBatch {
    id: u64,
    opened_ms: f64,
    batch: log::Batch,
    on_error: Vec<OnError>,
}

/// Writes one call's statements together with those of the calls ending at about the same
/// time: one D1 batch for all (group commit), retried group by group if it fails, so a bad
/// row cannot take the others down. The batch is sent by the call that opened it, from its
/// own `wait_until`, after a short window — or at once by a call that finds it full (or
/// stale); a call that only joins a batch is done at once. So every D1 call and timer
/// belongs to the invocation that waits for it (no promise crosses between requests).
async fn commit(db: &D1Database, group: Vec<Statement>, on_error: OnError) {
    let mut opened = None;
    let now = now_ms();
    let full = OPEN.with(|open| {
        let mut open = open.borrow_mut();
        let joinable =
            |o: &&mut OpenBatch| o.batch.admits(&group) && now - o.opened_ms < BATCH_STALE_MS;
        if let Some(current) = open.as_mut().filter(joinable) {
            current.batch.push(group);
            current.on_error.push(on_error);
            return None;
        }
        let id = BATCHES_OPENED.with(|n| n.replace(n.get() + 1));
        let mut batch = log::Batch::default();
        batch.push(group);
        opened = Some(id);
        open.replace(OpenBatch {
            id,
            opened_ms: now,
            batch,
            on_error: vec![on_error],
        })
    });
    if let Some(full) = full {
        // The batch this group did not fit in (or whose sender is gone) goes now.
        send(db, full).await;
    }
    let Some(id) = opened else { return };
    Delay::from(Duration::from_millis(BATCH_WINDOW_MS)).await;
    let due = OPEN.with(|open| {
        let mut open = open.borrow_mut();
        match open.as_ref() {
            Some(o) if o.id == id => open.take(),
            _ => None, // already sent by a call that found it full or stale
        }
    });
    if let Some(due) = due {
        send(db, due).await;
    }
}

async fn send(db: &D1Database, open: OpenBatch) {
    let OpenBatch {
        batch, on_error, ..
    } = open;
    let run = |statements| async move {
        run_statements(db, statements)
            .await
            .map_err(|e| e.to_string())
    };
    let outcomes = batch.run(run).await;
    for (outcome, report) in outcomes.into_iter().zip(on_error) {
        if let Err(e) = outcome {
            report(&e);
        }
    }
}

async fn run_statements(db: &D1Database, statements: &[Statement]) -> worker::Result<()> {
    match statements {
        [one] => run(db, one).await,
        many => run_batch(db, many).await,
    }
}

async fn write(db: &D1Database, record: LogRecord, max_rows: i64, scrubber: &Rc<Scrubber>) {
    let written = WRITES.with(|w| w.replace(w.get() + 1));
    let mut group = vec![record.insert()];
    if written.is_multiple_of(log::trim_every(max_rows)) {
        group.push(log::retention(max_rows));
    }
    let (request_id, scrubber) = (record.request_id, scrubber.clone());
    let on_error = Box::new(move |e: &str| {
        // A storage error can quote what was bound: scrubbed like everything else.
        let line = format!("request log: writing request {request_id} failed: {e}");
        console_error!("{}", scrubber.text(&line));
    });
    commit(db, group, on_error).await;
}

async fn write_refusal(db: &D1Database, scrubber: &Rc<Scrubber>) {
    let statements = log::refusal_statements(now_ms() as i64);
    let scrubber = scrubber.clone();
    let on_error = Box::new(move |e: &str| {
        let line = format!("request log: counting a refused request failed: {e}");
        console_error!("{}", scrubber.text(&line));
    });
    commit(db, statements.to_vec(), on_error).await;
}
