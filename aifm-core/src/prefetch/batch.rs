//! Thread batches: the misses of all the tasks of one thread, answered by one request.
//!
//! # The protocol
//!
//! A future that needs far memory calls [`batched`] with what it needs (the *items*: tickets,
//! keys) and how to answer a list of items (a closure that makes one batched request). The
//! items join the calling thread's batch for that *owner* (a runtime, a map: any address that
//! names what the closure talks to); the future wakes itself and returns `Pending` once. The
//! executor then polls the thread's other ready tasks, which queue their items in the same
//! batch. When the first of the queued futures is polled again it takes the whole batch and
//! answers it with its closure: one request for every task's items. The other futures find
//! their answers when polled; each is woken.
//!
//! So there is no thread per outstanding miss, and no thread besides the executor's: the
//! thread that answers a batch blocks for that batch's round trip, one round trip amortised
//! over all the misses its tasks had in flight, with no hand-off to a helper thread and back
//! (on a loaded two-core machine those wake-ups cost more than the round trip). Several
//! serving threads each drive their own batches; the backend pipelines their requests on its
//! connection.
//!
//! What it relies on from the executor: a task woken while it is polled is polled again after
//! the other ready tasks (what tokio's, smol's and the `futures` crate's executors do). One
//! that re-polls at once only makes smaller batches.
//!
//! # Cancellation and errors
//!
//! A future dropped while its items are queued takes them out; one dropped while another
//! future answers its batch leaves its answer unread. Any queued future may answer the batch,
//! so none waits for one that is gone. A failed batch resolves every future in it to a clone
//! of the error.

use crate::completion::Completion;
use crate::error::Result;
use crate::sync::MutexExt;
use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

/// What a future of the batch resolves to: one output per item.
type Answer<O> = Result<Vec<O>>;

/// One future's items.
struct Request<I, O> {
    items: Vec<I>,
    slot: Arc<Completion<Answer<O>>>,
}

/// The items queued for one owner by one thread's tasks.
struct Batch<I, O> {
    queued: Mutex<Vec<Request<I, O>>>,
}

/// A batch of any item types, as the thread's registry holds it.
type AnyBatch = dyn Any + Send + Sync;

thread_local! {
    /// This thread's batches by owner. An entry lives as long as a future holds its batch;
    /// dead ones are dropped when another is added.
    static BATCHES: RefCell<Vec<(usize, Weak<AnyBatch>)>> = const { RefCell::new(Vec::new()) };
}

/// This thread's batch of `owner` for items `I` answered by `O`s (a batch of other types
/// under the same owner address is another batch).
fn batch_for<I: Send + 'static, O: Send + 'static>(owner: usize) -> Arc<Batch<I, O>> {
    BATCHES.with(|b| {
        let mut all = b.borrow_mut();
        let found = all
            .iter()
            .filter(|(a, _)| *a == owner)
            .filter_map(|(_, w)| w.upgrade())
            .find_map(|any| any.downcast::<Batch<I, O>>().ok());
        if let Some(batch) = found {
            return batch;
        }
        let batch = Arc::new(Batch {
            queued: Mutex::new(Vec::new()),
        });
        all.retain(|(_, w)| w.strong_count() > 0);
        let any: Arc<AnyBatch> = batch.clone();
        all.push((owner, Arc::downgrade(&any)));
        batch
    })
}

/// A future that resolves to the answers for its items, in order, made by one batched request
/// with the items of every other task of this thread queued for the same `owner`.
///
/// On its first poll the future queues its items in the calling thread's batch for `owner`
/// (any address naming what `answer` talks to: a runtime, a map), wakes itself and returns
/// `Pending`, so that the executor polls the thread's other ready tasks, which queue theirs.
/// The first future of the batch polled again takes the whole batch and answers it with its
/// `answer`; the others find their answers (a clone of the error if it failed) and are woken.
/// No thread is parked per item and none besides the executor's is involved; the thread that
/// answers blocks for one round trip. A future dropped while queued takes its items out.
///
/// `answer` gets the items of the whole batch, in order, and returns one output per item (or
/// the error that fails them all); it must not depend on which future of the batch calls it.
///
/// # Examples
///
/// ```
/// use std::future::Future;
/// let double = |xs: Vec<u32>| Ok(xs.into_iter().map(|x| x * 2).collect());
/// let mut a = Box::pin(aifm_core::prefetch::batched(1, vec![1u32, 2], double));
/// let mut b = Box::pin(aifm_core::prefetch::batched(1, vec![5u32], double));
/// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
/// // Both queue and yield; the first polled again answers both with one call.
/// assert!(a.as_mut().poll(&mut cx).is_pending());
/// assert!(b.as_mut().poll(&mut cx).is_pending());
/// assert_eq!(a.as_mut().poll(&mut cx), std::task::Poll::Ready(Ok(vec![2, 4])));
/// assert_eq!(b.as_mut().poll(&mut cx), std::task::Poll::Ready(Ok(vec![10])));
/// ```
pub fn batched<I, O, F>(owner: usize, items: Vec<I>, answer: F) -> Batched<I, O, F>
where
    I: Send + 'static,
    O: Send + 'static,
    F: FnOnce(Vec<I>) -> Result<Vec<O>>,
{
    Batched {
        owner,
        pending: Some(items),
        batch: None,
        slot: Arc::default(),
        answer: Some(answer),
        done: false,
    }
}

/// The future of [`batched`].
pub struct Batched<I, O, F> {
    owner: usize,
    /// The items until the first poll queues them.
    pending: Option<Vec<I>>,
    batch: Option<Arc<Batch<I, O>>>,
    slot: Arc<Completion<Answer<O>>>,
    answer: Option<F>,
    done: bool,
}

impl<I, O, F> std::fmt::Debug for Batched<I, O, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batched")
            .field("owner", &self.owner)
            .field("queued", &self.batch.is_some())
            .field("done", &self.done)
            .finish()
    }
}

// The future holds no self-references: moving it is fine.
impl<I, O, F> Unpin for Batched<I, O, F> {}

impl<I, O, F> Future for Batched<I, O, F>
where
    I: Send + 'static,
    O: Send + 'static,
    F: FnOnce(Vec<I>) -> Result<Vec<O>>,
{
    type Output = Result<Vec<O>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Vec<O>>> {
        let this = self.get_mut();
        if let Some(items) = this.pending.take() {
            // First poll: queue, and let the thread's other tasks queue theirs.
            if items.is_empty() {
                this.done = true;
                return Poll::Ready(Ok(Vec::new()));
            }
            let batch = batch_for::<I, O>(this.owner);
            batch.queued.locked().push(Request {
                items,
                slot: this.slot.clone(),
            });
            this.batch = Some(batch);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if let Some(a) = this.slot.take_or_wait(cx.waker()) {
            this.done = true;
            return Poll::Ready(a);
        }
        let Some(batch) = &this.batch else {
            return Poll::Pending; // polled after completion
        };
        let requests = {
            let mut q = batch.queued.locked();
            if !q.iter().any(|r| Arc::ptr_eq(&r.slot, &this.slot)) {
                // Another thread is answering the batch we are in; it wakes us.
                return Poll::Pending;
            }
            std::mem::take(&mut *q)
        };
        let Some(answer) = this.answer.take() else {
            return Poll::Pending; // unreachable: a future answers at most one batch
        };
        answer_all(requests, answer);
        match this.slot.take_or_wait(cx.waker()) {
            Some(a) => {
                this.done = true;
                Poll::Ready(a)
            }
            None => Poll::Pending, // unreachable: our request was in the batch just answered
        }
    }
}

/// Answers every request with one call of `answer` on all their items.
fn answer_all<I, O>(requests: Vec<Request<I, O>>, answer: impl FnOnce(Vec<I>) -> Result<Vec<O>>) {
    let mut lens = Vec::with_capacity(requests.len());
    let mut slots = Vec::with_capacity(requests.len());
    let mut items = Vec::new();
    for r in requests {
        lens.push(r.items.len());
        slots.push(r.slot);
        items.extend(r.items);
    }
    let total = items.len();
    match answer(items) {
        Ok(outs) if outs.len() == total => {
            let mut outs = outs.into_iter();
            for (slot, n) in slots.iter().zip(lens) {
                slot.complete(Ok(outs.by_ref().take(n).collect()));
            }
        }
        Ok(outs) => {
            let e = crate::Error::Protocol(format!(
                "a batch of {total} items answered with {} outputs",
                outs.len()
            ));
            slots.iter().for_each(|s| s.complete(Err(e.clone())));
        }
        Err(e) => slots.iter().for_each(|s| s.complete(Err(e.clone()))),
    }
}

impl<I, O, F> Drop for Batched<I, O, F> {
    fn drop(&mut self) {
        if let (false, Some(batch)) = (self.done, &self.batch) {
            let mut q = batch.queued.locked();
            q.retain(|r| !Arc::ptr_eq(&r.slot, &self.slot));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use std::cell::Cell;

    fn poll<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
        Pin::new(f).poll(&mut Context::from_waker(std::task::Waker::noop()))
    }

    #[test]
    fn one_call_answers_every_queued_future_in_order() {
        let calls = Cell::new(0);
        let answer = |xs: Vec<u32>| {
            calls.set(calls.get() + 1);
            Ok(xs.into_iter().map(|x| x + 100).collect())
        };
        let mut futs: Vec<_> = (0..10u32)
            .map(|i| batched(7, (0..i % 3 + 1).map(|j| i * 10 + j).collect(), answer))
            .collect();
        assert!(futs.iter_mut().all(|f| poll(f).is_pending()));
        for (i, f) in futs.iter_mut().enumerate() {
            let i = i as u32;
            let want: Vec<u32> = (0..i % 3 + 1).map(|j| i * 10 + j + 100).collect();
            assert_eq!(poll(f), Poll::Ready(Ok(want)));
        }
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn an_error_fails_the_whole_batch_and_a_short_answer_is_one() {
        let fail = |_: Vec<u8>| -> Result<Vec<u8>> { Err(Error::Timeout) };
        let (mut a, mut b) = (batched(8, vec![1u8], fail), batched(8, vec![2u8, 3], fail));
        assert!(poll(&mut a).is_pending() && poll(&mut b).is_pending());
        assert_eq!(poll(&mut b), Poll::Ready(Err(Error::Timeout)));
        assert_eq!(poll(&mut a), Poll::Ready(Err(Error::Timeout)));
        let short = |_: Vec<u8>| -> Result<Vec<u8>> { Ok(vec![0]) };
        let (mut a, mut b) = (batched(8, vec![1u8], short), batched(8, vec![2u8], short));
        assert!(poll(&mut a).is_pending() && poll(&mut b).is_pending());
        assert!(matches!(poll(&mut a), Poll::Ready(Err(Error::Protocol(_)))));
        assert!(matches!(poll(&mut b), Poll::Ready(Err(Error::Protocol(_)))));
    }

    #[test]
    fn a_dropped_future_takes_its_items_out_and_owners_do_not_mix() {
        let seen = std::cell::RefCell::new(Vec::new());
        let answer = |xs: Vec<u16>| {
            seen.borrow_mut().extend(xs.iter().copied());
            Ok(xs)
        };
        let mut a = batched(9, vec![1u16], answer);
        let mut b = batched(9, vec![2u16], answer);
        let mut other = batched(10, vec![3u16], answer);
        assert!(poll(&mut a).is_pending() && poll(&mut b).is_pending());
        assert!(poll(&mut other).is_pending());
        drop(a);
        assert_eq!(poll(&mut b), Poll::Ready(Ok(vec![2])));
        assert_eq!(
            *seen.borrow(),
            [2],
            "the dropped future's item was not asked for"
        );
        assert_eq!(poll(&mut other), Poll::Ready(Ok(vec![3])));
    }
}
