//! [`TcpBackend`] as a [`Backend`]: each operation is one request on the wire (a batch, one
//! per piece that fits a frame), and every `begin_*` form sends before it returns.

use super::client::blob_size;
use super::conn::Call;
use super::TcpBackend;
use crate::backend::{self as backend, Backend};
use crate::error::{Error, Result};
use crate::wire::{Answer, Blob, Op};
use std::sync::atomic::Ordering;

/// Keys asked for per page of a key listing ([`Backend::keys`]).
const KEYS_PAGE: u32 = 4096;

/// Waits for every call of a batch (each answers `Done`); the first error wins.
fn finish_all(calls: Result<Vec<Call>>) -> backend::InFlight<()> {
    match calls {
        Ok(calls) => backend::InFlight::later(move || {
            let mut first_err = None;
            for call in calls {
                if let Err(e) = call.finish().and_then(Answer::done) {
                    first_err.get_or_insert(e);
                }
            }
            first_err.map_or(Ok(()), Err)
        }),
        Err(e) => backend::InFlight::done(Err(e)),
    }
}

impl Backend for TcpBackend {
    fn name(&self) -> String {
        format!("tcp://{}", self.c.opts.addr)
    }

    /// Sends the read now ([`TcpBackend::start_read`]); waiting collects the answer.
    fn begin_read(&self, ds: u32, key: &[u8]) -> backend::ReadInFlight {
        match self.start_read(ds, key) {
            Ok(pending) => backend::ReadInFlight::later(move || pending.wait()),
            Err(e) => backend::ReadInFlight::done(Err(e)),
        }
    }

    fn read(&self, ds: u32, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.c.call(&Op::Read { ds, key: Blob(key) })?.value()
    }

    fn write(&self, ds: u32, key: &[u8], value: &[u8]) -> Result<()> {
        self.c
            .call(&Op::Write {
                ds,
                key: Blob(key),
                value: Blob(value),
            })?
            .done()
    }

    fn remove(&self, ds: u32, key: &[u8]) -> Result<bool> {
        match self.c.call(&Op::Remove { ds, key: Blob(key) })? {
            Answer::Removed(b) => Ok(b),
            other => Err(other.unexpected()),
        }
    }

    fn read_many(&self, ds: u32, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        let calls = self.c.start_read_many(ds, keys)?;
        self.c.finish_read_many(ds, keys, calls)
    }

    /// Sends every piece now; the answer keeps a copy of the keys (and a handle on this
    /// backend) in case a piece must fall back to single reads.
    fn begin_read_many(&self, ds: u32, keys: &[&[u8]]) -> backend::ManyInFlight {
        match self.c.start_read_many(ds, keys) {
            Ok(calls) => {
                let (client, keys) = (self.c.clone(), keys.iter().map(|k| k.to_vec()));
                let keys: Vec<Vec<u8>> = keys.collect();
                backend::InFlight::later(move || client.finish_read_many(ds, &keys, calls))
            }
            Err(e) => backend::InFlight::done(Err(e)),
        }
    }

    fn write_many(&self, ds: u32, items: &[(&[u8], &[u8])]) -> Result<()> {
        self.begin_write_many(ds, items).wait()
    }

    /// Sends every piece now; waiting collects the answers.
    fn begin_write_many(&self, ds: u32, items: &[(&[u8], &[u8])]) -> backend::InFlight<()> {
        let sizes = items.iter().map(|(k, v)| blob_size(k) + blob_size(v));
        let calls = self.c.start_pieces(sizes, |r| Op::WriteMany {
            ds,
            items: items[r].iter().map(|(k, v)| (Blob(k), Blob(v))).collect(),
        });
        finish_all(calls)
    }

    fn remove_many(&self, ds: u32, keys: &[&[u8]]) -> Result<()> {
        self.begin_remove_many(ds, keys).wait()
    }

    /// Sends every piece now; waiting collects the answers.
    fn begin_remove_many(&self, ds: u32, keys: &[&[u8]]) -> backend::InFlight<()> {
        let calls = self
            .c
            .start_pieces(keys.iter().map(|k| blob_size(k)), |r| Op::RemoveMany {
                ds,
                keys: keys[r].iter().map(|k| Blob(k)).collect(),
            });
        finish_all(calls)
    }

    fn construct(&self, ds: u32, device: &str, params: &[u8]) -> Result<()> {
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

    fn begin_compute(&self, ds: u32, opcode: u32, input: &[u8]) -> backend::ComputeInFlight {
        let op = Op::Compute {
            ds,
            opcode,
            input: Blob(input),
        };
        match self.c.start(&op) {
            Ok(call) => backend::InFlight::later(move || match call.finish()? {
                Answer::Output(v) => Ok(v),
                other => Err(other.unexpected()),
            }),
            Err(e) => backend::InFlight::done(Err(e)),
        }
    }

    /// One request carrying the keys ([`backend::sharded::encode_shard_input`]), sent now.
    fn begin_compute_sharded(
        &self,
        ds: u32,
        opcode: u32,
        keys: &[&[u8]],
        input: &[u8],
    ) -> backend::InFlight<Vec<Vec<u8>>> {
        if keys.is_empty() {
            return backend::InFlight::done(Ok(Vec::new()));
        }
        let call = self.begin_compute(
            ds,
            opcode,
            &backend::sharded::encode_shard_input(keys, input),
        );
        backend::InFlight::later(move || Ok(vec![call.wait()?]))
    }

    fn compute(&self, ds: u32, opcode: u32, input: &[u8]) -> Result<Vec<u8>> {
        match self.c.call(&Op::Compute {
            ds,
            opcode,
            input: Blob(input),
        })? {
            Answer::Output(v) => Ok(v),
            other => Err(other.unexpected()),
        }
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
}
