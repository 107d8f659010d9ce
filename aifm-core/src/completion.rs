//! A one-shot answer handed from the thread that produces it to the future that waits for it.
//!
//! The helper threads' fetch futures and the polling thread's batches both park a future
//! until another party has its answer: [`Completion`] holds the answer once it is in and the
//! waker of the last poll until then. Invariant: `complete` stores the answer before it takes
//! the waker, under one lock, so a poll either sees the answer or leaves a waker that
//! `complete` will call.

use crate::sync::MutexExt;
use std::sync::Mutex;
use std::task::Waker;

/// One answer of type `T`, and the waker to call when it lands.
#[derive(Debug)]
pub(crate) struct Completion<T> {
    state: Mutex<(Option<T>, Option<Waker>)>,
}

impl<T> Default for Completion<T> {
    fn default() -> Self {
        Completion {
            state: Mutex::new((None, None)),
        }
    }
}

impl<T> Completion<T> {
    /// Stores the answer and wakes the waiting future, if any.
    pub(crate) fn complete(&self, answer: T) {
        let waker = {
            let mut s = self.state.locked();
            s.0 = Some(answer);
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The answer if it is in; else remembers `waker` for it.
    pub(crate) fn take_or_wait(&self, waker: &Waker) -> Option<T> {
        let mut s = self.state.locked();
        let answer = s.0.take();
        if answer.is_none() && !s.1.as_ref().is_some_and(|w| w.will_wake(waker)) {
            s.1 = Some(waker.clone());
        }
        answer
    }
}
