//! [`TcpBackend`] as a [`Backend`]: each operation is one request on the wire (a batch, one
//! per piece that fits a frame), and every `begin_*` form sends before it returns.

use super::client::blob_size;
use super::conn::Call;
use super::TcpBackend;
use crate::backend::{Backend, ComputeInFlight, InFlight, ManyInFlight, Placement, ReadInFlight};
use crate::error::{Error, Result};
use crate::wire::{Answer, Blob, Op};
use std::sync::atomic::Ordering;

/// Keys asked for per page of a key listing ([`Backend::keys`]).
const KEYS_PAGE: u32 = 4096;

/// Waits for every call of a batch (each answers `Done`); the first error wins.
fn finish_all(calls: Result<Vec<Call>>) -> InFlight<()> {
    match calls {
        Ok(calls) => InFlight::later(move || {
            let mut first_err = None;
            for call in calls {
                if let Err(e) = call.finish().and_then(Answer::done) {
                    first_err.get_or_insert(e);
                }
            }
            first_err.map_or(Ok(()), Err)
        }),
        Err(e) => InFlight::done(Err(e)),
    }
}

/// The answer of the request `started` sent, read by `answer` once it is in.
fn answer_of<T>(
    started: Result<Call>,
    answer: impl FnOnce(Answer) -> Result<T> + Send + 'static,
) -> InFlight<T> {
    match started {
        Ok(call) => InFlight::later(move || call.finish().and_then(answer)),
        Err(e) => InFlight::done(Err(e)),
    }
}

impl Backend for TcpBackend {
    fn name(&self) -> String {
        format!("tcp://{}", self.c.opts.addr)
    }

    /// Sends the read now ([`TcpBackend::start_read`]); waiting collects the answer.
    fn begin_read(&self, ds: u32, key: &[u8]) -> ReadInFlight {
        answer_of(
            self.c.start(&Op::Read { ds, key: Blob(key) }),
            Answer::value,
        )
    }

    fn begin_write(&self, ds: u32, key: &[u8], value: &[u8]) -> InFlight<()> {
        let op = Op::Write {
            ds,
            key: Blob(key),
            value: Blob(value),
        };
        answer_of(self.c.start(&op), Answer::done)
    }

    fn begin_remove(&self, ds: u32, key: &[u8]) -> InFlight<bool> {
        answer_of(
            self.c.start(&Op::Remove { ds, key: Blob(key) }),
            |a| match a {
                Answer::Removed(b) => Ok(b),
                other => Err(other.unexpected()),
            },
        )
    }

    fn begin_compute(&self, ds: u32, opcode: u32, input: &[u8]) -> ComputeInFlight {
        let op = Op::Compute {
            ds,
            opcode,
            input: Blob(input),
        };
        answer_of(self.c.start(&op), |a| match a {
            Answer::Output(v) => Ok(v),
            other => Err(other.unexpected()),
        })
    }

    /// The server holds one namespace: the placement means nothing there.
    fn construct_placed(&self, ds: u32, device: &str, params: &[u8], _: Placement) -> Result<()> {
        self.c
            .call(&Op::Construct {
                ds,
                device,
                params: Blob(params),
            })?
            .done()
    }

    fn destruct(&self, ds: u32) -> Result<()> {
        self.c.call(&Op::Destruct { ds })?.done()
    }

    /// Asks the server; when it cannot be asked, the last known figure.
    fn stored_bytes(&self) -> u64 {
        match self.c.call(&Op::StoredBytes) {
            Ok(Answer::Bytes(n)) => {
                self.c.last_stored.store(n, Ordering::Relaxed);
                n
            }
            _ => self.c.last_stored.load(Ordering::Relaxed),
        }
    }

    /// Sends every piece now; the answer keeps a copy of the keys (one buffer, and a handle
    /// on this backend) in case a piece must fall back to single reads.
    fn begin_read_many(&self, ds: u32, keys: &[&[u8]]) -> ManyInFlight {
        match self.c.start_read_many(ds, keys) {
            Ok(calls) => {
                let (client, keys) = (self.c.clone(), KeyCopy::new(keys));
                InFlight::later(move || client.finish_read_many(ds, &keys.refs(), calls))
            }
            Err(e) => InFlight::done(Err(e)),
        }
    }

    /// Sends every piece, then lends each value from the frame it arrived in: the one copy a
    /// value makes on this side is `sink`'s, from the receive buffer into its place.
    fn read_many_with(
        &self,
        ds: u32,
        keys: &[&[u8]],
        sink: &mut dyn FnMut(usize, Option<&[u8]>),
    ) -> Result<()> {
        let calls = self.c.start_read_many(ds, keys)?;
        self.c.finish_read_many_with(ds, keys, calls, sink)
    }

    /// Sends every piece now; waiting collects the answers.
    fn begin_write_many(&self, ds: u32, items: &[(&[u8], &[u8])]) -> InFlight<()> {
        let sizes = items.iter().map(|(k, v)| blob_size(k) + blob_size(v));
        let calls = self.c.start_pieces(sizes, |r| Op::WriteMany {
            ds,
            items: items[r].iter().map(|(k, v)| (Blob(k), Blob(v))).collect(),
        });
        finish_all(calls)
    }

    /// Sends every piece now; waiting collects the answers.
    fn begin_remove_many(&self, ds: u32, keys: &[&[u8]]) -> InFlight<()> {
        let calls = self
            .c
            .start_pieces(keys.iter().map(|k| blob_size(k)), |r| Op::RemoveMany {
                ds,
                keys: keys[r].iter().map(|k| Blob(k)).collect(),
            });
        finish_all(calls)
    }

    /// Pages of 4096 keys, each starting after the last key of the previous one,
    /// until the server returns an empty page.
    fn keys(&self, ds: u32) -> Result<Vec<Vec<u8>>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        loop {
            let after = out.last().map(|k| Blob(k));
            let page = match self.c.call(&Op::Keys {
                ds,
                after,
                limit: KEYS_PAGE,
            })? {
                Answer::Keys(page) => page,
                other => return Err(other.unexpected()),
            };
            if page.is_empty() {
                return Ok(out);
            }
            // Each page must continue strictly upwards, or a broken server could loop us.
            let mut prev = out.last().map(|k| &k[..]);
            for k in &page {
                if prev.is_some_and(|p| p >= &k[..]) {
                    return Err(Error::Protocol(
                        "key listing page is not in increasing order".into(),
                    ));
                }
                prev = Some(k);
            }
            if page.len() > KEYS_PAGE as usize {
                return Err(Error::Protocol(format!(
                    "key listing page of {} keys (asked for {KEYS_PAGE})",
                    page.len()
                )));
            }
            out.extend(page);
        }
    }
}

/// The keys of a batch read, copied into one buffer: what the read needs, should a piece fall
/// back to single reads, after the call that started it has returned.
struct KeyCopy {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl KeyCopy {
    fn new(keys: &[&[u8]]) -> Self {
        let mut bytes = Vec::with_capacity(keys.iter().map(|k| k.len()).sum());
        let ends = keys
            .iter()
            .map(|k| {
                bytes.extend_from_slice(k);
                bytes.len()
            })
            .collect();
        KeyCopy { bytes, ends }
    }

    fn refs(&self) -> Vec<&[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(a, &b)| &self.bytes[a..b])
            .collect()
    }
}
