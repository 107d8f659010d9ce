//! The login: the hello, the challenge (with a nonce when the server has a token), the proof,
//! and attaching the connection to a new or resumed session.
//!
//! Until it is through, the connection's reader takes frames of at most
//! [`wire::HANDSHAKE_MAX_FRAME`] bytes and the whole exchange must finish within the
//! handshake timeout, so a peer that has proved nothing costs a thread and a few KiB for a
//! few seconds at most.

use super::{Conn, End, Wait};
use crate::sessions::{Attached, Resume};
use aifm_core::engine::Namespace;
use aifm_core::wire::{self, auth, Challenge, ClientHello, Login, ServerMsg, SessionId, Welcome};
use aifm_core::Error;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

impl Conn<'_> {
    /// Hello, challenge, login: returns the session and its namespace, or ends the
    /// connection with a fatal frame.
    pub(super) fn handshake(&mut self) -> Result<(SessionId, Arc<Namespace>), End> {
        let shared = self.shared;
        let deadline = Wait::Handshake(Instant::now() + shared.handshake_timeout);
        let hello: ClientHello = self.read_msg(deadline)?;
        if hello.magic != wire::MAGIC {
            return Err(self.fatal(Error::Protocol("not an aifm client (bad magic)".into())));
        }
        if hello.version != wire::VERSION {
            return Err(self.fatal(Error::Protocol(format!(
                "protocol version {} is not supported (this server speaks {})",
                hello.version,
                wire::VERSION
            ))));
        }
        let nonce = shared
            .token
            .as_ref()
            .map(|_| aifm_core::wire::auth::random_bytes::<32>());
        self.send(&ServerMsg::Challenge(Challenge {
            version: wire::VERSION,
            nonce,
            max_frame: shared.max_frame,
        }))?;
        let login: Login = self.read_msg(deadline)?;
        if let (Some(token), Some(nonce)) = (&shared.token, nonce) {
            let why = match login.proof {
                Some(p) if auth::verify(token, &nonce, &p) => None,
                Some(_) => Some("wrong token"),
                None => Some("this server requires a token"),
            };
            if let Some(why) = why {
                shared
                    .counters
                    .auth_failures
                    .fetch_add(1, Ordering::Relaxed);
                return Err(self.fatal(Error::AuthFailed(why.into())));
            }
        }
        let attached = shared.sessions.attach(
            &shared.engine,
            login.resume.as_ref(),
            shared.client_quota,
            shared.max_sessions,
        );
        let Attached {
            ticket,
            ns,
            resume,
            reclaimed,
        } = match attached {
            Ok(a) => a,
            Err(why) => return Err(self.limit(why)),
        };
        if let Some((old, ns)) = reclaimed {
            shared.reclaimed(
                old,
                ns,
                "session reclaimed early to make room at the session limit",
            );
        }
        let id = ticket.session;
        // Session ids go to debug logs only: the INFO log may be read by more people than
        // the clients' data.
        match resume {
            Resume::Resumed => tracing::info!(conn = self.slot.id, "session resumed"),
            Resume::Gone => {
                tracing::info!(
                    conn = self.slot.id,
                    "session to resume is gone; new session"
                )
            }
            Resume::WrongSecret => {
                shared
                    .counters
                    .auth_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    conn = self.slot.id,
                    "a resume presented a wrong secret; new session"
                );
            }
            Resume::NotAsked => {}
        }
        tracing::debug!(conn = self.slot.id, session = %id, ?resume, "logged in");
        if let Err(e) = self.send(&ServerMsg::Welcome(Welcome {
            ticket,
            resumed: resume == Resume::Resumed,
            quota: shared.client_quota,
        })) {
            shared.sessions.detach(id);
            return Err(e);
        }
        Ok((id, ns))
    }

    /// Reads one whole handshake message.
    fn read_msg<T: serde::de::DeserializeOwned>(&mut self, deadline: Wait) -> Result<T, End> {
        loop {
            match self.rd.next_frame() {
                Ok(Some(body)) => {
                    let msg = wire::decode_exact::<T>(body);
                    return msg.map_err(|e| self.fatal(e));
                }
                Ok(None) => self.fill(deadline)?,
                Err(e) => return Err(self.fatal(e)),
            }
        }
    }
}
