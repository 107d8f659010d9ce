//! Token authentication by challenge and response.
//!
//! The server sends a fresh 32-byte random nonce; the client answers with
//! HMAC-SHA256(key = token, message = [`CONTEXT`] ‖ nonce). The token never crosses the wire,
//! and a proof recorded on one connection is worthless on the next (new nonce). The server
//! compares in constant time.
//!
//! Why HMAC-SHA256 (the `hmac` and `sha2` crates of RustCrypto): it is the standard keyed
//! hash for exactly this (RFC 2104), pure Rust, audited and widely used, and `verify_slice`
//! compares in constant time. A token is any byte string; a file's surrounding whitespace is
//! trimmed by [`read_token_file`].

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::hash::{BuildHasher, RandomState};
use std::time::Instant;

/// Domain separation for the proof, so the token's MAC is never valid for another purpose.
pub const CONTEXT: &[u8] = b"aifm-rs wire v1 login";

type HmacSha256 = Hmac<Sha256>;

/// `N` random bytes from the operating system (`getrandom`): the one source of unguessable
/// values in the project (nonces, session ids and secrets, namespace names, capability
/// tokens). Should the OS refuse (never on Linux), std's randomly keyed hasher stands in,
/// mixed with the time.
///
/// # Examples
///
/// ```
/// let a: [u8; 16] = aifm_core::wire::auth::random_bytes();
/// let b: [u8; 16] = aifm_core::wire::auth::random_bytes();
/// assert_ne!(a, b);
/// ```
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    if getrandom::getrandom(&mut out).is_err() {
        let s = RandomState::new();
        let t = Instant::now();
        for (i, chunk) in out.chunks_mut(8).enumerate() {
            let word = s.hash_one((t, i)).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
    out
}

fn mac(token: &[u8], nonce: &[u8; 32]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(token).expect("HMAC takes any key length");
    m.update(CONTEXT);
    m.update(nonce);
    m
}

/// The client's proof of `token` for the server's `nonce`.
///
/// # Examples
///
/// ```
/// use aifm_core::wire::auth::{proof, verify};
/// let nonce = [7; 32];
/// let p = proof(b"secret", &nonce);
/// assert!(verify(b"secret", &nonce, &p));
/// assert!(!verify(b"other", &nonce, &p));
/// assert!(!verify(b"secret", &[8; 32], &p));
/// ```
pub fn proof(token: &[u8], nonce: &[u8; 32]) -> [u8; 32] {
    mac(token, nonce).finalize().into_bytes().into()
}

/// Whether `proof` proves `token` for `nonce` (constant-time comparison).
///
/// # Examples
///
/// ```
/// assert!(!aifm_core::wire::auth::verify(b"t", &[0; 32], &[0; 32]));
/// ```
pub fn verify(token: &[u8], nonce: &[u8; 32], proof: &[u8; 32]) -> bool {
    mac(token, nonce).verify_slice(proof).is_ok()
}

/// Whether two 32-byte secrets are equal, in time that does not depend on where they differ
/// (the comparison of `subtle`, through the `digest` crate's constant-time output type), so
/// a client cannot find a session's resume secret byte by byte from response times.
///
/// # Examples
///
/// ```
/// use aifm_core::wire::auth::same_secret;
/// assert!(same_secret(&[3; 32], &[3; 32]));
/// let mut other = [3; 32];
/// other[31] = 4;
/// assert!(!same_secret(&[3; 32], &other));
/// ```
pub fn same_secret(a: &[u8; 32], b: &[u8; 32]) -> bool {
    use hmac::digest::{CtOutput, Output};
    let ct = |x: &[u8; 32]| CtOutput::<HmacSha256>::new(Output::<HmacSha256>::clone_from_slice(x));
    ct(a) == ct(b)
}

/// Reads a token from a file, trimming surrounding whitespace (a trailing newline).
///
/// # Errors
/// [`crate::Error::Config`] when the file cannot be read or holds only whitespace.
///
/// # Examples
///
/// ```
/// let path = std::env::temp_dir().join(format!("aifm-token-doc-{}", std::process::id()));
/// std::fs::write(&path, "s3cret\n").unwrap();
/// assert_eq!(aifm_core::wire::auth::read_token_file(&path).unwrap(), b"s3cret");
/// std::fs::remove_file(&path).unwrap();
/// ```
pub fn read_token_file(path: impl AsRef<std::path::Path>) -> crate::Result<Vec<u8>> {
    let path = path.as_ref();
    let raw = std::fs::read(path).map_err(|e| {
        crate::Error::Config(format!("cannot read token file {}: {e}", path.display()))
    })?;
    let token = raw.trim_ascii();
    if token.is_empty() {
        return Err(crate::Error::Config(format!(
            "token file {} is empty",
            path.display()
        )));
    }
    Ok(token.to_vec())
}
