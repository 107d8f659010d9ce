//! A minimal single-thread executor for tests of async lookups, with no executor dependency.
//!
//! [`Tasks`] polls its futures from a run queue in FIFO order, as tokio's current-thread
//! runtime does: a task woken while it is polled runs again after the others that are ready.
//! What it adds for tests is the hang check: when nothing is ready, it waits for a wake-up (one
//! may come from another thread, such as the runtime's fetch helpers) at most `patience`, and
//! then reports which tasks are still pending instead of hanging the test.

use aifm_core::sync::MutexExt;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

/// The run queue, shared with the tasks' wakers.
#[derive(Debug, Default)]
struct Queue {
    ready: Mutex<VecDeque<usize>>,
    woken: Condvar,
}

#[derive(Debug)]
struct TaskWaker {
    task: usize,
    queue: Arc<Queue>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let mut q = self.queue.ready.locked();
        if !q.contains(&self.task) {
            q.push_back(self.task);
        }
        self.queue.woken.notify_one();
    }
}

type Task<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// Futures run to completion on the calling thread; see the [module docs](self).
///
/// # Examples
///
/// ```
/// use aifm_collections::testing::executor::Tasks;
/// let done = std::cell::Cell::new(0);
/// let mut tasks = Tasks::new();
/// for _ in 0..3 {
///     let done = &done;
///     tasks.spawn(async move { done.set(done.get() + 1) });
/// }
/// tasks.run(std::time::Duration::from_secs(5)).unwrap();
/// assert_eq!(done.get(), 3);
/// ```
pub struct Tasks<'a> {
    tasks: Vec<Option<Task<'a>>>,
    queue: Arc<Queue>,
    polls: u64,
}

impl std::fmt::Debug for Tasks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tasks")
            .field("tasks", &self.tasks.len())
            .field("polls", &self.polls)
            .finish()
    }
}

impl Default for Tasks<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> Tasks<'a> {
    /// No tasks.
    pub fn new() -> Self {
        Tasks {
            tasks: Vec::new(),
            queue: Arc::new(Queue::default()),
            polls: 0,
        }
    }

    /// Adds a task (it first runs in [`Tasks::run`] or [`Tasks::run_polls`]).
    pub fn spawn(&mut self, f: impl Future<Output = ()> + 'a) {
        self.queue.ready.locked().push_back(self.tasks.len());
        self.tasks.push(Some(Box::pin(f)));
    }

    /// Tasks not finished yet.
    pub fn pending(&self) -> usize {
        self.tasks.iter().filter(|t| t.is_some()).count()
    }

    /// Polls made so far.
    pub fn polls(&self) -> u64 {
        self.polls
    }

    /// Runs ready tasks until every task is done, or none is ready for `patience`.
    ///
    /// # Errors
    /// The number of tasks still pending when none was woken for `patience` (a lost wake-up
    /// or a hang).
    pub fn run(&mut self, patience: Duration) -> Result<(), usize> {
        self.run_polls(u64::MAX, patience)
    }

    /// [`Tasks::run`], stopping after at most `polls` polls (to stop in the middle of things).
    ///
    /// # Errors
    /// As [`Tasks::run`].
    pub fn run_polls(&mut self, polls: u64, patience: Duration) -> Result<(), usize> {
        let mut left = polls;
        while left > 0 && self.pending() > 0 {
            let next = {
                let q = self.queue.ready.locked();
                let (mut q, _) = self
                    .queue
                    .woken
                    .wait_timeout_while(q, patience, |q| q.is_empty())
                    .unwrap_or_else(|e| e.into_inner());
                q.pop_front()
            };
            let Some(i) = next else {
                return Err(self.pending());
            };
            let Some(task) = self.tasks[i].as_mut() else {
                continue;
            };
            let waker = Waker::from(Arc::new(TaskWaker {
                task: i,
                queue: self.queue.clone(),
            }));
            self.polls += 1;
            left -= 1;
            if task
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_ready()
            {
                self.tasks[i] = None;
            }
        }
        Ok(())
    }
}
