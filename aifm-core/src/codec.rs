//! How objects look when they leave the process.
//!
//! Objects are native `T` while local; they are encoded only when written to far memory and
//! decoded when they come back. [`FarData`] is the contract:
//!
//! * **plain data** ([`Pod`] types: integers, floats, arrays of them, and your own `#[repr(C)]`
//!   structs declared with [`far_data_pod!`](crate::far_data_pod)) travels as its raw bytes: no
//!   encoding cost at all;
//! * **other types** (`String`, `Vec<T>`, `Option<T>`, tuples, and any serde type declared with
//!   [`far_data_serde!`](crate::far_data_serde) or wrapped in [`Serde`]) go through serde +
//!   postcard or a hand-written length-prefixed form.
//!
//! # Heap memory owned by an object
//!
//! A `String`'s buffer lives outside the local heap's regions, yet it is local memory all the
//! same. [`FarData::heap_bytes`] reports it, and the runtime charges it against the local
//! budget: when an object is allocated, when it is fetched, and each time the evacuator visits
//! it (so growth through `deref_mut` is picked up at the next visit). Types that do not override
//! `heap_bytes` are charged their inline size only.

use crate::error::{Error, Result};
use serde::{de::DeserializeOwned, Serialize};

/// A value that can live in far memory.
///
/// # The contract: a far value is its encoding
///
/// When the evacuator evicts an object it encodes it (unless far memory already holds an
/// identical copy), then **drops the local copy**, running `Drop`; a later dereference
/// **decodes a new value**. So, for a value that travels:
///
/// * `Drop` runs once per local lifetime, not once per logical value: an evicted value is
///   dropped at eviction and its decoded successor is dropped later (at the next eviction or
///   when its owner frees it). A value freed while in far memory is not decoded to be dropped.
/// * A collection's `clone` may decode from far memory instead of calling `Clone::clone`.
/// * Identity (addresses, `Rc`s, handles to outside resources) does not survive; only what
///   `encode` writes does.
///
/// Types whose `Drop` or `Clone` act outside their own memory (counting, closing files,
/// releasing locks) must tolerate this or stay out of far memory. Interior mutability is fine:
/// the runtime never keeps two live copies of an object a reference may reach (see
/// `Runtime::evacuate_now` and the scope protocol), and a type that says
/// [`FarData::INTERIOR_MUTABLE`] (the default) is written back whenever it leaves, since a
/// change behind `&T` leaves no trace the runtime could see.
///
/// A panic in `encode`, `decode`, `heap_bytes` or `Drop` never wedges the runtime: the object
/// is left as it was and the panic reaches the caller (as [`crate::Error::Panicked`] from the
/// `try_` forms, or as a panic), or, on an evacuator thread, is counted in
/// `Stats::evacuation_panics`.
///
/// # Examples
///
/// ```
/// use aifm_core::FarData;
/// let mut bytes = Vec::new();
/// "hello".to_string().encode(&mut bytes).unwrap();
/// assert_eq!(String::decode(&bytes).unwrap(), "hello");
/// ```
pub trait FarData: Sized + Send + 'static {
    /// Whether a shared reference can change what [`FarData::encode`] writes (a `Mutex`,
    /// `RefCell`, `Cell` or atomic inside). The runtime keeps a fetched object's far copy and,
    /// when the object leaves again unchanged, drops it without writing; it knows of changes
    /// through `deref_mut`, not of changes behind `&T`. So for a type that says `true` (the
    /// default, the safe answer) every eviction encodes and writes the value; a type that
    /// says `false` promises that no `&self` path changes its encoding, and is evicted
    /// without a write when it was only read. Plain data, strings and the std containers of
    /// such types say `false`.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::{FarData, Serde};
    /// assert!(!<(u64, String)>::INTERIOR_MUTABLE); // evicted unwritten when only read
    /// assert!(<Serde<std::sync::Mutex<u64>>>::INTERIOR_MUTABLE); // written at every eviction
    /// ```
    const INTERIOR_MUTABLE: bool = true;

    /// Appends the far-memory encoding of `self` to `out`.
    ///
    /// # Errors
    /// [`Error::Codec`] if the value cannot be represented.
    fn encode(&self, out: &mut Vec<u8>) -> Result<()>;

    /// Rebuilds a value from exactly the bytes `encode` produced.
    ///
    /// # Errors
    /// [`Error::Codec`] on malformed input (never a panic).
    fn decode(bytes: &[u8]) -> Result<Self>;

    /// [`FarData::decode`] straight into `slot` (the object's place in a heap region), for
    /// types whose `decode` would build a large value only to move it there: a page of plain
    /// data is then copied once, from the received bytes to its place. The default decodes
    /// and writes.
    ///
    /// Return the reference `slot.write` (or `assume_init_mut` after initialising every
    /// field) gives: the runtime takes the slot as initialised only when the reference it
    /// gets back points at the slot; any other answer is a [`Error::Codec`].
    ///
    /// # Errors
    /// As [`FarData::decode`].
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::FarData;
    /// let mut slot = std::mem::MaybeUninit::uninit();
    /// assert_eq!(*u32::decode_in_place(&7u32.to_le_bytes(), &mut slot).unwrap(), 7);
    /// ```
    fn decode_in_place<'a>(
        bytes: &[u8],
        slot: &'a mut std::mem::MaybeUninit<Self>,
    ) -> Result<&'a mut Self> {
        Ok(slot.write(Self::decode(bytes)?))
    }

    /// Bytes of heap memory this value owns outside its inline representation.
    fn heap_bytes(&self) -> usize {
        0
    }

    /// Appends the encoding of a whole slice (used by `Vec<Self>` and by chunked
    /// collections). The default length-prefixes each element; plain data overrides it with
    /// one copy of the raw bytes.
    ///
    /// # Errors
    /// As [`FarData::encode`].
    fn encode_slice(items: &[Self], out: &mut Vec<u8>) -> Result<()> {
        encode_pod(&(items.len() as u64), out);
        items.iter().try_for_each(|v| encode_field(v, out))
    }

    /// Decodes what [`FarData::encode_slice`] produced.
    ///
    /// # Errors
    /// [`Error::Codec`] on malformed input.
    fn decode_vec(bytes: &[u8]) -> Result<Vec<Self>> {
        let n: u64 = decode_pod(
            bytes
                .get(..8)
                .ok_or_else(|| Error::Codec("truncated".into()))?,
        )?;
        let mut fields = Fields(&bytes[8..]);
        // Never trust a length prefix for an allocation: every element costs >= 4 bytes.
        let mut v = Vec::with_capacity((n as usize).min(fields.0.len() / 4));
        for _ in 0..n {
            v.push(Self::decode(fields.next()?)?);
        }
        fields.finish()?;
        Ok(v)
    }

    /// `Some` exactly when `Self` is plain data ([`Pod`]): the proof a generic container
    /// needs to store `Self` as raw bytes (a chunk reinterpreted as `[Self]`) without a
    /// `Self: Pod` bound. [`far_data_pod!`](crate::far_data_pod) sets it; nothing else can,
    /// since only [`PodWitness::new`] makes a witness and it requires `Self: Pod`.
    const POD: Option<PodWitness<Self>> = None;
}

/// Proof that `T` is plain data: the only constructor, [`PodWitness::new`], requires
/// `T: Pod`. See [`FarData::POD`].
///
/// # Examples
///
/// ```
/// use aifm_core::FarData;
/// assert!(u64::POD.is_some());
/// assert!(String::POD.is_none());
/// ```
pub struct PodWitness<T>(std::marker::PhantomData<fn() -> T>);

impl<T: Pod> PodWitness<T> {
    /// The witness for a plain-data type.
    ///
    /// # Examples
    ///
    /// ```
    /// let _w = aifm_core::codec::PodWitness::<[u8; 4]>::new();
    /// ```
    pub const fn new() -> Self {
        PodWitness(std::marker::PhantomData)
    }
}

impl<T: Pod> Default for PodWitness<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for PodWitness<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for PodWitness<T> {}

impl<T> std::fmt::Debug for PodWitness<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PodWitness")
    }
}

/// The crate behind [`Pod`], re-exported so a program can derive it without a dependency of
/// its own (`#[bytemuck(crate = "aifm_core::codec::bytemuck")]`, see
/// [`far_data_pod!`](crate::far_data_pod)).
pub use bytemuck;

/// Types whose every bit pattern is a valid value and which hold no pointers or padding, so
/// their raw bytes are their encoding: `bytemuck`'s [`Pod`](bytemuck::Pod) (whose derive
/// checks the layout at compile time) for types that may cross threads. Implemented for every
/// such type; there is nothing to implement by hand.
pub trait Pod: bytemuck::Pod + Send + Sync {}

impl<T: bytemuck::Pod + Send + Sync> Pod for T {}

macro_rules! pod_primitives {
    ($($t:ty),*) => { $( $crate::far_data_pod!(@impl $t); )* };
}
pod_primitives!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64);

impl<T: Pod, const N: usize> FarData for [T; N] {
    const INTERIOR_MUTABLE: bool = false;
    const POD: Option<PodWitness<Self>> = Some(PodWitness::new());
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        encode_pod(self, out);
        Ok(())
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        decode_pod(bytes)
    }
}

/// Appends the raw bytes of a plain-data value.
///
/// # Examples
///
/// ```
/// let mut b = Vec::new();
/// aifm_core::codec::encode_pod(&7u32, &mut b);
/// assert_eq!(b, 7u32.to_ne_bytes());
/// ```
pub fn encode_pod<T: Pod>(value: &T, out: &mut Vec<u8>) {
    out.extend_from_slice(bytemuck::bytes_of(value));
}

/// Appends the raw bytes of a slice of plain data.
///
/// # Examples
///
/// ```
/// let mut b = Vec::new();
/// aifm_core::codec::encode_pod_slice(&[1u16, 2], &mut b);
/// assert_eq!(b.len(), 4);
/// ```
pub fn encode_pod_slice<T: Pod>(items: &[T], out: &mut Vec<u8>) {
    out.extend_from_slice(bytemuck::cast_slice(items));
}

/// Reads a vector of plain data back from its raw bytes (whatever their alignment).
///
/// # Errors
/// [`Error::Codec`] when the length is not a multiple of the element size.
///
/// # Examples
///
/// ```
/// let v: Vec<u16> = aifm_core::codec::decode_pod_vec(&[1, 0, 2, 0]).unwrap();
/// assert_eq!(v, [u16::from_ne_bytes([1, 0]), u16::from_ne_bytes([2, 0])]);
/// assert!(aifm_core::codec::decode_pod_vec::<u16>(&[1, 2, 3]).is_err());
/// ```
pub fn decode_pod_vec<T: Pod>(bytes: &[u8]) -> Result<Vec<T>> {
    let size = std::mem::size_of::<T>().max(1);
    if bytes.len() % size != 0 {
        return Err(Error::Codec(format!(
            "{} bytes is not a whole number of {size}-byte items",
            bytes.len()
        )));
    }
    let mut v = vec![<T as bytemuck::Zeroable>::zeroed(); bytes.len() / size];
    if std::mem::size_of::<T>() > 0 {
        bytemuck::cast_slice_mut::<T, u8>(&mut v).copy_from_slice(bytes);
    }
    Ok(v)
}

/// Reads a plain-data value back from exactly `size_of::<T>()` raw bytes.
///
/// # Errors
/// [`Error::Codec`] when the length is wrong.
///
/// # Examples
///
/// ```
/// let x: u32 = aifm_core::codec::decode_pod(&5u32.to_ne_bytes()).unwrap();
/// assert_eq!(x, 5);
/// assert!(aifm_core::codec::decode_pod::<u32>(&[1]).is_err());
/// ```
pub fn decode_pod<T: Pod>(bytes: &[u8]) -> Result<T> {
    if bytes.len() != std::mem::size_of::<T>() {
        return Err(Error::Codec(format!(
            "expected {} raw bytes, got {}",
            std::mem::size_of::<T>(),
            bytes.len()
        )));
    }
    Ok(bytemuck::pod_read_unaligned(bytes))
}

/// Declares `FarData` for plain-data types by raw bytes; the type must be [`Pod`], which
/// `bytemuck`'s derive gives a `#[repr(C)]` struct after checking it has no padding.
///
/// # Examples
///
/// ```
/// use aifm_core::codec::bytemuck;
/// #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
/// #[bytemuck(crate = "aifm_core::codec::bytemuck")]
/// #[repr(C)]
/// struct Point { x: f64, y: f64 }
/// aifm_core::far_data_pod!(Point);
///
/// use aifm_core::FarData;
/// let mut b = Vec::new();
/// Point { x: 1.0, y: 2.0 }.encode(&mut b).unwrap();
/// assert_eq!(b.len(), 16);
/// assert_eq!(Point::decode(&b).unwrap(), Point { x: 1.0, y: 2.0 });
/// ```
#[macro_export]
macro_rules! far_data_pod {
    (@impl $t:ty) => {
        impl $crate::FarData for $t {
            // Plain data is `Copy`, and a `Copy` type holds no `UnsafeCell`.
            const INTERIOR_MUTABLE: bool = false;
            const POD: ::std::option::Option<$crate::codec::PodWitness<Self>> =
                ::std::option::Option::Some($crate::codec::PodWitness::new());
            fn encode(&self, out: &mut ::std::vec::Vec<u8>) -> $crate::Result<()> {
                $crate::codec::encode_pod(self, out);
                Ok(())
            }
            fn decode(bytes: &[u8]) -> $crate::Result<Self> {
                $crate::codec::decode_pod(bytes)
            }
            fn encode_slice(items: &[Self], out: &mut ::std::vec::Vec<u8>) -> $crate::Result<()> {
                $crate::codec::encode_pod_slice(items, out);
                Ok(())
            }
            fn decode_vec(bytes: &[u8]) -> $crate::Result<::std::vec::Vec<Self>> {
                $crate::codec::decode_pod_vec(bytes)
            }
        }
    };
    ($($t:ty),+ $(,)?) => { $( $crate::far_data_pod!(@impl $t); )+ };
}

/// Declares `FarData` for serde types, encoded with postcard.
///
/// # Examples
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct User { name: String, age: u32 }
/// aifm_core::far_data_serde!(User);
///
/// use aifm_core::FarData;
/// let mut b = Vec::new();
/// User { name: "ada".into(), age: 36 }.encode(&mut b).unwrap();
/// assert_eq!(User::decode(&b).unwrap(), User { name: "ada".into(), age: 36 });
/// ```
#[macro_export]
macro_rules! far_data_serde {
    ($($t:ty),+ $(,)?) => { $(
        impl $crate::FarData for $t {
            fn encode(&self, out: &mut ::std::vec::Vec<u8>) -> $crate::Result<()> {
                $crate::codec::encode_serde(self, out)
            }
            fn decode(bytes: &[u8]) -> $crate::Result<Self> {
                $crate::codec::decode_serde(bytes)
            }
        }
    )+ };
}

/// Appends the postcard encoding of a serde value.
///
/// # Errors
/// [`Error::Codec`] when serde refuses the value.
///
/// # Examples
///
/// ```
/// let mut b = Vec::new();
/// aifm_core::codec::encode_serde(&("a", 1u8), &mut b).unwrap();
/// let back: (String, u8) = aifm_core::codec::decode_serde(&b).unwrap();
/// assert_eq!(back, ("a".to_string(), 1));
/// ```
pub fn encode_serde<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    let taken = std::mem::take(out);
    *out = postcard::to_extend(value, taken).map_err(|e| Error::Codec(e.to_string()))?;
    Ok(())
}

/// Decodes a postcard-encoded serde value; trailing bytes are an error.
///
/// # Errors
/// [`Error::Codec`] on malformed or trailing input.
///
/// # Examples
///
/// ```
/// assert!(aifm_core::codec::decode_serde::<String>(&[200]).is_err());
/// ```
pub fn decode_serde<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let (value, rest) =
        postcard::take_from_bytes(bytes).map_err(|e| Error::Codec(e.to_string()))?;
    if !rest.is_empty() {
        return Err(Error::Codec(format!("{} trailing bytes", rest.len())));
    }
    Ok(value)
}

/// Wraps any serde type so it can live in far memory without a declaration.
///
/// # Examples
///
/// ```
/// use aifm_core::{FarData, Serde};
/// use std::collections::BTreeMap;
/// let m: BTreeMap<String, u32> = [("a".to_string(), 1)].into();
/// let mut b = Vec::new();
/// Serde(m.clone()).encode(&mut b).unwrap();
/// assert_eq!(Serde::<BTreeMap<String, u32>>::decode(&b).unwrap().0, m);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Serde<T>(pub T);

impl<T: Serialize + DeserializeOwned + Send + 'static> FarData for Serde<T> {
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        encode_serde(&self.0, out)
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        decode_serde(bytes).map(Serde)
    }
}

impl FarData for bool {
    const INTERIOR_MUTABLE: bool = false;
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        out.push(*self as u8);
        Ok(())
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        match bytes {
            [0] => Ok(false),
            [1] => Ok(true),
            _ => Err(Error::Codec("invalid bool".into())),
        }
    }
}

impl FarData for char {
    const INTERIOR_MUTABLE: bool = false;
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        encode_pod(&(*self as u32), out);
        Ok(())
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        char::from_u32(decode_pod(bytes)?).ok_or_else(|| Error::Codec("invalid char".into()))
    }
}

impl FarData for () {
    const INTERIOR_MUTABLE: bool = false;
    fn encode(&self, _out: &mut Vec<u8>) -> Result<()> {
        Ok(())
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.is_empty() {
            Ok(())
        } else {
            Err(Error::Codec("unit carries no bytes".into()))
        }
    }
}

impl FarData for String {
    const INTERIOR_MUTABLE: bool = false;
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(self.as_bytes());
        Ok(())
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        String::from_utf8(bytes.to_vec()).map_err(|e| Error::Codec(e.to_string()))
    }
    fn heap_bytes(&self) -> usize {
        self.capacity()
    }
}

/// Splits a sequence of length-prefixed (u32 LE) fields.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn next(&mut self) -> Result<&'a [u8]> {
        let short = || Error::Codec("truncated field".into());
        let len_bytes: [u8; 4] = self.0.get(..4).ok_or_else(short)?.try_into().unwrap();
        let len = u32::from_le_bytes(len_bytes) as usize;
        let field = self.0.get(4..4 + len).ok_or_else(short)?;
        self.0 = &self.0[4 + len..];
        Ok(field)
    }
    fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Codec(format!("{} trailing bytes", self.0.len())))
        }
    }
}

fn encode_field<T: FarData>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    value.encode(out)?;
    let len =
        u32::try_from(out.len() - at - 4).map_err(|_| Error::Codec("field > 4 GiB".into()))?;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

impl<T: FarData> FarData for Vec<T> {
    const INTERIOR_MUTABLE: bool = T::INTERIOR_MUTABLE;
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        T::encode_slice(self, out)
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        T::decode_vec(bytes)
    }
    fn heap_bytes(&self) -> usize {
        self.capacity() * std::mem::size_of::<T>() + self.iter().map(T::heap_bytes).sum::<usize>()
    }
}

impl<T: FarData> FarData for Box<T> {
    const INTERIOR_MUTABLE: bool = T::INTERIOR_MUTABLE;
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        (**self).encode(out)
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        T::decode(bytes).map(Box::new)
    }
    fn heap_bytes(&self) -> usize {
        std::mem::size_of::<T>() + (**self).heap_bytes()
    }
}

impl<T: FarData> FarData for Option<T> {
    const INTERIOR_MUTABLE: bool = T::INTERIOR_MUTABLE;
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode(out)?;
            }
        }
        Ok(())
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        match bytes.split_first() {
            Some((0, [])) => Ok(None),
            Some((1, rest)) => T::decode(rest).map(Some),
            _ => Err(Error::Codec("invalid Option".into())),
        }
    }
    fn heap_bytes(&self) -> usize {
        self.as_ref().map_or(0, T::heap_bytes)
    }
}

macro_rules! tuple_far_data {
    ($($n:ident)+) => {
        impl<$($n: FarData),+> FarData for ($($n,)+) {
            const INTERIOR_MUTABLE: bool = false $(|| $n::INTERIOR_MUTABLE)+;
            #[allow(non_snake_case)]
            fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
                let ($($n,)+) = self;
                $( encode_field($n, out)?; )+
                Ok(())
            }
            fn decode(bytes: &[u8]) -> Result<Self> {
                let mut f = Fields(bytes);
                let v = ($($n::decode(f.next()?)?,)+);
                f.finish()?;
                Ok(v)
            }
            #[allow(non_snake_case)]
            fn heap_bytes(&self) -> usize {
                let ($($n,)+) = self;
                0 $( + $n.heap_bytes() )+
            }
        }
    };
}
tuple_far_data!(A);
tuple_far_data!(A B);
tuple_far_data!(A B C);
tuple_far_data!(A B C D);

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    fn round_trip<T: FarData + PartialEq + std::fmt::Debug>(v: T) -> bool {
        let mut b = Vec::new();
        v.encode(&mut b).unwrap();
        T::decode(&b).unwrap() == v
    }

    quickcheck! {
        fn strings(s: String) -> bool { round_trip(s) }
        fn vec_of_strings(v: Vec<String>) -> bool { round_trip(v) }
        fn tuples(a: u64, b: String, c: Option<i32>) -> bool { round_trip((a, b, c)) }
        fn garbage_never_panics(bytes: Vec<u8>) -> bool {
            let _ = Vec::<(String, u64)>::decode(&bytes);
            let _ = <Option<String>>::decode(&bytes);
            let _ = u64::decode(&bytes);
            true
        }
    }

    #[test]
    fn arrays_are_raw() {
        let mut b = Vec::new();
        [7u64; 4].encode(&mut b).unwrap();
        assert_eq!(b.len(), 32);
        assert_eq!(<[u64; 4]>::decode(&b).unwrap(), [7; 4]);
        assert!(<[u64; 4]>::decode(&b[..31]).is_err());
    }

    #[test]
    fn pod_vectors_are_raw() {
        let mut b = Vec::new();
        vec![1u64, 2, 3].encode(&mut b).unwrap();
        assert_eq!(b.len(), 24);
        assert_eq!(Vec::<u64>::decode(&b).unwrap(), [1, 2, 3]);
        assert!(Vec::<u64>::decode(&b[..23]).is_err());
    }

    #[test]
    fn string_heap_is_counted() {
        let s = String::with_capacity(100);
        assert_eq!(s.heap_bytes(), 100);
        assert_eq!(vec![String::with_capacity(10)].heap_bytes(), 24 + 10);
    }
}
