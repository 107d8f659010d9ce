//! The harness of the std-port suites (`std_vec.rs`, `std_vecdeque.rs`,
//! `std_linkedlist.rs`): each test body runs twice, once in the default runtime (as a user
//! who just swapped the type would run it) and once in a 1 MiB runtime whose `churn()`
//! forces evacuation, so every element the test reads back has been to far memory.

#![allow(dead_code)]

use aifm_core::Runtime;

/// Where a ported test runs.
pub struct Env {
    pub rt: Runtime,
    tiny: bool,
}

impl Env {
    /// Pushes everything to far memory (under the tiny budget; a no-op in the default
    /// runtime, which a test shares with its neighbours).
    pub fn churn(&self) {
        if self.tiny {
            // A round keeps objects touched since the last one (it compacts them); the
            // next round finds them cold and writes them out.
            self.rt.evacuate_now();
            self.rt.evacuate_now();
        }
    }

    /// Elements enough to outgrow the tiny budget several times (small in the default
    /// runtime, where size proves nothing).
    pub fn big(&self) -> usize {
        if self.tiny {
            300_000
        } else {
            5_000
        }
    }

    /// Checks, under the tiny budget, that the test's data did travel.
    pub fn traveled(&self) {
        if self.tiny {
            let s = self.rt.stats();
            assert!(s.write_backs > 0, "nothing was written to far memory: {s}");
        }
    }
}

/// Tests under a tiny budget run one at a time: scope pressure is process-wide.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `body` in the default runtime, then in a 1 MiB runtime with forced evacuation.
pub fn both(body: impl Fn(&Env)) {
    body(&Env {
        rt: Runtime::global().clone(),
        tiny: false,
    });
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env {
        rt: Runtime::builder().local_memory(1 << 20).build().unwrap(),
        tiny: true,
    };
    body(&env);
    env.traveled();
}

/// Whether `f` panics (std's `#[should_panic]` tests, run inside one test body).
pub fn panics(f: impl FnOnce()) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err()
}
