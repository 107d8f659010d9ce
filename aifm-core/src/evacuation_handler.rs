//! What a structure's evacuation handler sees and answers: [`WriteBack`], the views of a cold
//! object ([`ObjectView`], [`PinView`]) and the [`EvacuationHandler`] trait, plus the table of
//! handlers by structure id that the runtime's shared state keeps.
//!
//! This is the low half of the public `handlers` module (which re-exports it next to the
//! `Structure` handle): it depends only on the heap's vtables, the backend trait and the error
//! type, so the shared state and the evacuator can use it without reaching up to the runtime.

use crate::backend::Backend;
use crate::error::Result;
use crate::heap::VTable;
use std::any::TypeId;
use std::sync::Arc;

/// What the runtime should do with a cold object after the handler saw it.
///
/// # Examples
///
/// ```
/// use aifm_core::WriteBack;
/// // A hash map evicting a pair under its own key, batched by the runtime:
/// let w = WriteBack::DetachAs { key: b"user:7".to_vec(), value: 36u32.to_le_bytes().to_vec() };
/// assert_ne!(w, WriteBack::Default);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteBack {
    /// Write the whole object under its key if it is dirty (the runtime's default).
    Default,
    /// The handler wrote what far memory needs (perhaps only part of the object) under the
    /// object's key; the runtime turns the pointer remote, and a later dereference reads that
    /// key back.
    Written,
    /// The handler stored the object its own way and detached it from the runtime (for
    /// example a hash map that evicts a pair from its local index and looks it up by its key
    /// later). The pointer turns `DETACHED`; dereferencing it fails with
    /// [`crate::Error::Detached`] and the structure should drop it.
    Detached,
    /// Like `Detached`, but the runtime does the storing: `value` goes to the structure's far
    /// store under `key`, batched with the round's other write-backs (one request for many
    /// objects). The object is detached only once far memory has accepted it; if it refuses,
    /// the object stays local and nothing is lost. Prefer this to writing in the handler.
    DetachAs {
        /// The key in the structure's far store.
        key: Vec<u8>,
        /// The bytes to store.
        value: Vec<u8>,
    },
}

/// What both views know of an object: its data, its type, its key and its structure. The
/// views differ in who else may touch the object while they live, which is what their
/// `downcast` arguments rest on.
#[derive(Clone, Copy)]
pub(crate) struct Erased<'a> {
    pub(crate) data: *const u8,
    pub(crate) vtable: &'static VTable,
    pub(crate) key: u64,
    pub(crate) ds: u32,
    pub(crate) _life: std::marker::PhantomData<&'a ()>,
}

impl Erased<'_> {
    /// The object, if it is a `T`.
    ///
    /// # Safety
    /// `data` is a live object of the vtable's type for the borrow's life, and no `&mut` to
    /// it exists meanwhile.
    unsafe fn downcast<T: 'static>(&self) -> Option<&T> {
        // SAFETY: the type id matches; liveness and aliasing are the caller's.
        ((self.vtable.type_id)() == TypeId::of::<T>()).then(|| unsafe { &*(self.data as *const T) })
    }

    /// A `Debug` builder named `name` with the key and the structure filled in.
    fn fields<'f, 'b>(
        &self,
        name: &str,
        f: &'f mut std::fmt::Formatter<'b>,
    ) -> std::fmt::DebugStruct<'f, 'b> {
        let mut d = f.debug_struct(name);
        d.field("key", &self.key).field("ds", &self.ds);
        d
    }
}

/// A cold object as a handler sees it, while the evacuator owns it exclusively.
pub struct ObjectView<'a> {
    pub(crate) obj: Erased<'a>,
    pub(crate) dirty: bool,
}

impl std::fmt::Debug for ObjectView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.obj
            .fields("ObjectView", f)
            .field("dirty", &self.dirty)
            .finish()
    }
}

impl ObjectView<'_> {
    /// The object, if it is a `T`.
    pub fn downcast<T: 'static>(&self) -> Option<&T> {
        // SAFETY: the evacuator holds the object exclusively (BUSY) for the view's lifetime.
        unsafe { self.obj.downcast() }
    }
    /// The object's key within its structure.
    pub fn key(&self) -> u64 {
        self.obj.key
    }
    /// The object's structure id.
    pub fn structure(&self) -> u32 {
        self.obj.ds
    }
    /// Whether the local copy differs from far memory's.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }
    /// The object's far-memory encoding.
    ///
    /// # Errors
    /// [`crate::Error::Codec`].
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        // SAFETY: `data` is a live object of the vtable's type (see `downcast`).
        unsafe { (self.obj.vtable.encode)(self.obj.data, &mut out)? };
        Ok(out)
    }
}

/// An object as [`EvacuationHandler::pinned`] sees it: the runtime holds the object's pointer
/// word (no one can move, free or newly reach it meanwhile), but the structure's own pin holders
/// may be using it at the same time. So unlike an [`ObjectView`] it offers no encoding, and a
/// structure that answers from the object must read only what its pin holders never write
/// outside interior mutability (a reader count in an atomic, say).
///
/// # Examples
///
/// A handler that answers from a pin count kept in the object (see
/// [`EvacuationHandler::pinned`] for the whole contract):
///
/// ```
/// use aifm_core::{EvacuationHandler, PinView};
/// use std::sync::atomic::{AtomicU32, Ordering};
/// struct Pins;
/// impl EvacuationHandler for Pins {
///     fn pinned(&self, obj: &PinView<'_>) -> bool {
///         obj.downcast::<AtomicU32>().is_some_and(|n| n.load(Ordering::Acquire) > 0)
///     }
/// }
/// ```
pub struct PinView<'a> {
    pub(crate) obj: Erased<'a>,
}

impl std::fmt::Debug for PinView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.obj.fields("PinView", f).finish()
    }
}

impl PinView<'_> {
    /// The object, if it is a `T`.
    pub fn downcast<T: 'static>(&self) -> Option<&T> {
        // SAFETY: the runtime holds the object's word (BUSY) for the lifetime of the view, so
        // the object is live and stays where it is. Other users of the object may only be its
        // structure's pin holders, which by the contract of `EvacuationHandler::pinned` write
        // nothing of it outside interior mutability, so a shared reference aliases no `&mut`.
        unsafe { self.obj.downcast() }
    }
    /// The object's key within its structure.
    pub fn key(&self) -> u64 {
        self.obj.key
    }
    /// The object's structure id.
    pub fn structure(&self) -> u32 {
        self.obj.ds
    }
}

/// Hooks a data structure gives the evacuator.
///
/// # Examples
///
/// A handler that writes only the first 8 bytes of `[u64; 4]` objects (say the rest is
/// derivable):
///
/// ```
/// use aifm_core::{Backend, EvacuationHandler, ObjectView, WriteBack};
/// struct FirstWordOnly;
/// impl EvacuationHandler for FirstWordOnly {
///     fn write_back(&self, obj: &ObjectView<'_>, far: &dyn Backend) -> aifm_core::Result<WriteBack> {
///         let v = obj.downcast::<[u64; 4]>().expect("only arrays here");
///         far.write(obj.structure(), &obj.key().to_le_bytes(), &v[0].to_le_bytes())?;
///         Ok(WriteBack::Detached)
///     }
/// }
/// ```
pub trait EvacuationHandler: Send + Sync + 'static {
    /// Called for each cold object of the structure before it leaves local memory.
    ///
    /// # Errors
    /// An error keeps the object local (it is retried in a later round).
    fn write_back(&self, _obj: &ObjectView<'_>, _far: &dyn Backend) -> Result<WriteBack> {
        Ok(WriteBack::Default)
    }

    /// Called when an object moves locally (compaction or mutator migration), after its bytes
    /// were copied from `old` to `new` and before the pointer is switched. Fix embedded raw
    /// pointers here. (Embedded `RemBox`es need no fixing: they point at stable slots.)
    fn on_move(&self, _old: *const u8, _new: *mut u8) {}

    /// Whether the structure has pinned this object in place: a pinned object is never moved
    /// (not evicted to far memory, not compacted, not migrated by a mutator), so a structure
    /// may keep using its address after the dereference scope it found it in has ended. The
    /// runtime asks while it holds the object's pointer word, before every move; a pinned
    /// object stays where it is, unmarked, and its region is kept (at the back of the
    /// evacuation queue) until a later round finds the object unpinned. A panic counts as
    /// pinned. The default pins nothing.
    ///
    /// # The pin protocol
    ///
    /// The structure pins an object by recording so *in the object* (a count or a bit in an
    /// atomic field), and does it **inside a dereference scope, after the dereference that
    /// found the object**. Then every move sees the pin: a move happens only after every scope
    /// open when the object was marked for evacuation has ended (so a pin taken in such a
    /// scope is visible by then), and a thread that dereferences the object later meets the
    /// mark or the claimed word and waits for the move to be decided. Once pinned, the scope
    /// may end; the pin holder unpins when done (after its last access). An unpinned object may
    /// move or leave at once, so an address must not be used after its pin is gone.
    ///
    /// Pin holders use the object concurrently with this call: everything they may write must
    /// sit in interior mutability (atomics, `UnsafeCell`), which is what [`PinView::downcast`]
    /// relies on. Keep the answer cheap: it is asked for every object an evacuation round
    /// claims of the structure.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::{EvacuationHandler, PinView};
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// /// Objects whose first field counts the users that hold their address.
    /// struct Counted { users: AtomicU32, value: u64 }
    /// struct ByCount;
    /// impl EvacuationHandler for ByCount {
    ///     fn pinned(&self, obj: &PinView<'_>) -> bool {
    ///         obj.downcast::<Counted>().is_some_and(|c| c.users.load(Ordering::Acquire) != 0)
    ///     }
    /// }
    /// ```
    fn pinned(&self, _obj: &PinView<'_>) -> bool {
        false
    }
}

/// Handlers by structure id (index 0 is the runtime's own object store).
pub(crate) type HandlerTable = Vec<Option<Option<Arc<dyn EvacuationHandler>>>>;
